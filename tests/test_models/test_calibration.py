"""Tests of mmdisalign.models.calibration against closed forms."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import DefaultScope

from mmdisalign.models import (BaseCalibration, DisAlignCalibration,
                               LogitAdjustCalibration, LWSCalibration,
                               TauNormCalibration, is_calibration)


def _randomize(calib: DisAlignCalibration, seed: int = 0) -> None:
    """Give alpha, beta and the confidence layer non-trivial values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        calib.alpha.copy_(torch.randn(calib.alpha.shape, generator=gen))
        calib.beta.copy_(torch.randn(calib.beta.shape, generator=gen))
        layer = calib.confidence_layer
        layer.weight.copy_(0.5 *
                           torch.randn(layer.weight.shape, generator=gen))
        if layer.bias is not None:
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=gen))


def _sigma_2d(calib: DisAlignCalibration, feats: torch.Tensor):
    """Closed-form sigma for a plain linear confidence: (N, 1)."""
    w = calib.confidence.weight.detach()[0]
    b = calib.confidence.bias.detach()[0]
    return torch.sigmoid(feats @ w + b)[:, None]


def _sigma_dense(calib: DisAlignCalibration, feats: torch.Tensor):
    """Closed-form sigma for a plain 1x1 conv confidence: (N, 1, H, W)."""
    w = calib.confidence.weight.detach()[0, :, 0, 0]
    b = calib.confidence.bias.detach()[0]
    return torch.sigmoid(torch.einsum('nchw,c->nhw', feats, w) + b)[:, None]


def _eq6(logits, alpha, beta, sigma):
    """zhat = (1 + sigma * alpha) * z + sigma * beta, classes on dim 1."""
    shape = (1, -1) + (1, ) * (logits.dim() - 2)
    alpha = alpha.detach().view(shape)
    beta = beta.detach().view(shape)
    return (1 + sigma * alpha) * logits + sigma * beta


# --------------------------------------------------------------------------
# DisAlignCalibration: eq. 6
# --------------------------------------------------------------------------


def test_hand_computed_value():
    calib = DisAlignCalibration(num_classes=2, in_channels=3)
    with torch.no_grad():
        calib.alpha.copy_(torch.tensor([1.0, -0.5]))
        calib.beta.copy_(torch.tensor([0.5, 2.0]))
        calib.confidence.weight.zero_()  # sigma = sigmoid(0) = 0.5
    out = calib(torch.tensor([[2.0, 4.0]]), torch.ones(1, 3))
    # (1 + 0.5*1)*2 + 0.5*0.5 = 3.25 ; (1 - 0.25)*4 + 0.5*2 = 4.0
    assert torch.allclose(out, torch.tensor([[3.25, 4.0]]))


def test_closed_form_2d():
    torch.manual_seed(0)
    calib = DisAlignCalibration(num_classes=5, in_channels=7)
    _randomize(calib)
    logits, feats = torch.randn(6, 5), torch.randn(6, 7)
    out = calib(logits, feats)
    sigma = _sigma_2d(calib, feats)
    assert out.shape == logits.shape
    assert torch.allclose(
        out, _eq6(logits, calib.alpha, calib.beta, sigma), atol=1e-6)
    # equals the paper's eq. 5 with alpha' = 1 + alpha
    s = (1 + calib.alpha.detach()) * logits + calib.beta.detach()
    assert torch.allclose(out, sigma * s + (1 - sigma) * logits, atol=1e-5)
    assert torch.allclose(calib.get_confidence(feats), sigma)


def test_closed_form_dense():
    torch.manual_seed(1)
    calib = DisAlignCalibration(num_classes=4, in_channels=3, dense=True)
    assert isinstance(calib.confidence, nn.Conv2d)
    assert calib.confidence.kernel_size == (1, 1)
    _randomize(calib, seed=1)
    logits, feats = torch.randn(2, 4, 3, 5), torch.randn(2, 3, 3, 5)
    out = calib(logits, feats)
    sigma = _sigma_dense(calib, feats)
    assert sigma.shape == (2, 1, 3, 5)
    assert torch.allclose(
        out, _eq6(logits, calib.alpha, calib.beta, sigma), atol=1e-6)

    # dense == the 2-D module applied to every pixel with the same numbers
    flat = DisAlignCalibration(num_classes=4, in_channels=3)
    with torch.no_grad():
        flat.alpha.copy_(calib.alpha)
        flat.beta.copy_(calib.beta)
        flat.confidence.weight.copy_(calib.confidence.weight.view(1, 3))
        flat.confidence.bias.copy_(calib.confidence.bias)
    per_pixel = flat(
        logits.permute(0, 2, 3, 1).reshape(-1, 4),
        feats.permute(0, 2, 3, 1).reshape(-1, 3))
    assert torch.allclose(
        out.permute(0, 2, 3, 1).reshape(-1, 4), per_pixel, atol=1e-6)


@pytest.mark.parametrize('dense', [False, True])
def test_identity_init(dense):
    torch.manual_seed(2)
    calib = DisAlignCalibration(num_classes=3, in_channels=2048, dense=dense)
    assert torch.equal(calib.alpha.detach(), torch.zeros(3))
    assert torch.equal(calib.beta.detach(), torch.zeros(3))
    weight = calib.confidence.weight.detach()
    assert abs(weight.std().item() - 0.01) < 0.001
    assert abs(weight.mean().item()) < 0.001
    assert torch.equal(calib.confidence.bias.detach(), torch.zeros(1))
    if dense:
        logits, feats = torch.randn(2, 3, 4, 4), torch.randn(2, 2048, 4, 4)
    else:
        logits, feats = torch.randn(4, 3), torch.randn(4, 2048)
    assert torch.equal(calib(logits, feats), logits)


def test_reference_cls_init():
    torch.manual_seed(3)
    c = 64
    calib = DisAlignCalibration(
        num_classes=4, in_channels=c, init_mode='reference_cls')
    assert torch.equal(calib.alpha.detach(), torch.ones(4))
    assert torch.equal(calib.beta.detach(), torch.zeros(4))
    assert torch.equal(calib.confidence.weight.detach(), torch.full((1, c),
                                                                    0.1))
    bias = calib.confidence.bias.item()
    assert abs(bias) <= 1 / math.sqrt(c) and bias != 0.0
    # reference head: (1 + sigma * s) * z + sigma * b with s = 1, b = 0
    feats = torch.rand(3, c)
    logits = torch.randn(3, 4)
    sigma = torch.sigmoid(0.1 * feats.sum(1, keepdim=True) + bias)
    assert torch.allclose(calib(logits, feats), (1 + sigma) * logits)
    # post-ReLU features: sigma ~ 1, so the head starts at ~ 2 z
    big = torch.full((3, c), 5.0)
    assert torch.allclose(calib(logits, big), 2 * logits, atol=1e-5)


def test_reference_cls_bias_is_pytorch_default():
    c = 16
    biases = torch.stack([
        DisAlignCalibration(2, c, init_mode='reference_cls').confidence.bias
        for _ in range(200)
    ]).detach()
    bound = 1 / math.sqrt(c)
    assert biases.abs().max() <= bound
    assert biases.max() > 0.8 * bound and biases.min() < -0.8 * bound


def test_init_overrides():
    calib = DisAlignCalibration(
        3,
        4,
        alpha_init=0.25,
        beta_init=-1.0,
        confidence_init=dict(type='Constant', val=0.3, bias=0.2))
    assert torch.equal(calib.alpha.detach(), torch.full((3, ), 0.25))
    assert torch.equal(calib.beta.detach(), torch.full((3, ), -1.0))
    assert torch.equal(calib.confidence.weight.detach(), torch.full((1, 4),
                                                                    0.3))
    assert calib.confidence.bias.item() == pytest.approx(0.2)
    calib.init_weights()
    assert torch.equal(calib.alpha.detach(), torch.full((3, ), 0.25))
    assert torch.equal(calib.confidence.weight.detach(), torch.full((1, 4),
                                                                    0.3))


class _Head(BaseModule):
    """A parent like mmpretrain's LinearClsHead: Normal init on Linear."""

    def __init__(self, calib_cfg):
        super().__init__(
            init_cfg=dict(type='Normal', layer='Linear', std=5.0, bias=3.0))
        self.fc = nn.Linear(8, 3)
        self.calib = ROOT_MODELS.build(calib_cfg)


@pytest.mark.parametrize('init_mode', ['identity', 'reference_cls'])
def test_init_weights_keeps_calibration_init(init_mode):
    torch.manual_seed(4)
    head = _Head(
        dict(
            type='DisAlignCalibration',
            num_classes=3,
            in_channels=8,
            init_mode=init_mode))
    calib = head.calib
    head.init_weights()
    assert head.fc.bias.detach().eq(3.0).all()  # the parent init ran
    weight = calib.confidence.weight.detach()
    if init_mode == 'identity':
        assert torch.equal(calib.alpha.detach(), torch.zeros(3))
        assert weight.abs().max() < 0.06  # N(0, 0.01), not N(0, 5)
        assert torch.equal(calib.confidence.bias.detach(), torch.zeros(1))
    else:
        assert torch.equal(calib.alpha.detach(), torch.ones(3))
        assert torch.equal(weight, torch.full((1, 8), 0.1))
        assert calib.confidence.bias.item() != 3.0
        assert abs(calib.confidence.bias.item()) <= 1 / math.sqrt(8)
    assert torch.equal(calib.beta.detach(), torch.zeros(3))

    # a module on its own, and a second call does not reset trained values
    alone = DisAlignCalibration(3, 8, init_mode=init_mode)
    alone.init_weights()
    expected = 1.0 if init_mode == 'reference_cls' else 0.0
    assert torch.equal(alone.alpha.detach(), torch.full((3, ), expected))
    with torch.no_grad():
        alone.alpha.fill_(7.0)
    alone.init_weights()
    assert torch.equal(alone.alpha.detach(), torch.full((3, ), 7.0))


def test_own_init_cfg_wins():
    calib = DisAlignCalibration(
        3, 4, init_cfg=dict(type='Constant', layer='Linear', val=0.7, bias=0))
    calib.init_weights()
    assert torch.equal(calib.confidence.weight.detach(), torch.full((1, 4),
                                                                    0.7))
    assert torch.equal(calib.alpha.detach(), torch.zeros(3))


def test_normalize_feature():
    torch.manual_seed(5)
    calib = DisAlignCalibration(4, 6, normalize_feature=True)
    _randomize(calib, seed=5)
    logits, feats = torch.randn(3, 4), torch.randn(3, 6)
    out = calib(logits, feats)
    sigma = _sigma_2d(calib, feats / feats.norm(dim=1, keepdim=True))
    assert torch.allclose(
        out, _eq6(logits, calib.alpha, calib.beta, sigma), atol=1e-6)
    assert torch.allclose(calib(logits, 10 * feats), out, atol=1e-6)
    calib.normalize_feature = False
    assert not torch.allclose(calib(logits, 10 * feats), out, atol=1e-3)

    dense = DisAlignCalibration(4, 6, dense=True, normalize_feature=True)
    _randomize(dense, seed=6)
    logits, feats = torch.randn(2, 4, 2, 3), torch.randn(2, 6, 2, 3)
    unit = feats / feats.norm(dim=1, keepdim=True)
    sigma = _sigma_dense(dense, unit)
    assert torch.allclose(
        dense(logits, feats),
        _eq6(logits, dense.alpha, dense.beta, sigma),
        atol=1e-6)


def test_norm_act_confidence_dense_reference_seg():
    torch.manual_seed(6)
    c = 2048
    calib = DisAlignCalibration(
        5,
        c,
        dense=True,
        confidence_norm_cfg=dict(type='BN'),
        confidence_act_cfg=dict(type='ReLU'))
    conv, bn = calib.confidence.conv, calib.confidence.bn
    assert isinstance(conv, nn.Conv2d) and conv.bias is None
    assert isinstance(bn, nn.BatchNorm2d) and bn.num_features == 1
    assert isinstance(calib.confidence.activate, nn.ReLU)
    assert calib.confidence_layer is conv
    # mmcv ConvModule init: kaiming normal, fan_out (= 1), relu: std sqrt(2)
    assert abs(conv.weight.std().item() - math.sqrt(2)) < 0.1
    assert bn.weight.item() == 1.0 and bn.bias.item() == 0.0
    # identity at init
    logits, feats = torch.randn(2, 5, 4, 4), torch.randn(2, c, 4, 4)
    assert torch.equal(calib(logits, feats), logits)

    _randomize(calib, seed=7)
    with torch.no_grad():
        bn.weight.fill_(1.5)
        bn.bias.fill_(-0.2)
    calib.train()
    out = calib(logits, feats)
    y = torch.einsum('nchw,c->nhw', feats, conv.weight.detach()[0, :, 0, 0])
    y = (y - y.mean()) / torch.sqrt(y.var(unbiased=False) + bn.eps)
    sigma = torch.sigmoid(torch.relu(1.5 * y - 0.2))[:, None]
    assert sigma.min() == 0.5
    assert torch.allclose(
        out, _eq6(logits, calib.alpha, calib.beta, sigma), atol=1e-5)
    got = calib.get_confidence(feats)
    assert got.min().item() >= 0.5 and (got == 0.5).any()


def test_norm_act_confidence_2d():
    torch.manual_seed(7)
    calib = DisAlignCalibration(
        3,
        4,
        confidence_norm_cfg=dict(type='BN'),
        confidence_act_cfg=dict(type='ReLU'))
    assert isinstance(calib.confidence.fc, nn.Linear)
    assert calib.confidence.fc.bias is None
    assert isinstance(calib.confidence.bn, nn.BatchNorm1d)
    feats = torch.randn(8, 4)
    sigma = calib.get_confidence(feats)
    assert sigma.shape == (8, 1)
    assert sigma.min().item() == 0.5 and sigma.max().item() > 0.5
    # activation only: linear with bias, then ReLU
    act_only = DisAlignCalibration(3, 4, confidence_act_cfg=dict(type='ReLU'))
    assert act_only.confidence.fc.bias is not None
    w = act_only.confidence.fc.weight.detach()[0]
    expected = torch.sigmoid(torch.relu(feats @ w))[:, None]
    assert torch.allclose(act_only.get_confidence(feats), expected)


@pytest.mark.parametrize('columns,calibrated', [((-1, ), [0, 1, 2]),
                                                ((1, ), [0, 2, 3]),
                                                ((0, 4), [1, 2, 3])])
def test_uncalibrated_columns(columns, calibrated):
    torch.manual_seed(8)
    k = 3
    calib = DisAlignCalibration(k, 5, uncalibrated_columns=columns)
    _randomize(calib, seed=8)
    num_logits = k + len(columns)
    logits, feats = torch.randn(6, num_logits), torch.randn(6, 5)
    out = calib(logits, feats)
    skipped = [i for i in range(num_logits) if i not in calibrated]
    assert torch.equal(out[:, skipped], logits[:, skipped])
    sigma = _sigma_2d(calib, feats)
    assert torch.allclose(
        out[:, calibrated],
        _eq6(logits[:, calibrated], calib.alpha, calib.beta, sigma),
        atol=1e-6)
    assert 'calibrated_index' not in calib.state_dict()


def test_uncalibrated_background_dense():
    torch.manual_seed(9)
    calib = DisAlignCalibration(2, 3, dense=True, uncalibrated_columns=(-1, ))
    _randomize(calib, seed=9)
    logits, feats = torch.randn(2, 3, 2, 2), torch.randn(2, 3, 2, 2)
    out = calib(logits, feats)
    assert torch.equal(out[:, 2], logits[:, 2])
    sigma = _sigma_dense(calib, feats)
    assert torch.allclose(
        out[:, :2],
        _eq6(logits[:, :2], calib.alpha, calib.beta, sigma),
        atol=1e-6)


def test_gradients():
    torch.manual_seed(10)
    classifier = nn.Linear(5, 4, bias=True).requires_grad_(False)
    calib = DisAlignCalibration(3, 5, uncalibrated_columns=(-1, ))
    _randomize(calib, seed=10)
    assert {n
            for n, _ in calib.named_parameters()
            } == {'alpha', 'beta', 'confidence.weight', 'confidence.bias'}
    feats = torch.randn(6, 5)
    logits = classifier(feats)
    calib(logits, feats).sum().backward()
    assert classifier.weight.grad is None and classifier.bias.grad is None
    sigma = _sigma_2d(calib, feats)
    # d sum / d beta_j = sum_n sigma_n ; d sum / d alpha_j = sum_n sigma_n z_nj
    assert torch.allclose(calib.beta.grad, sigma.sum().expand(3))
    assert torch.allclose(
        calib.alpha.grad, (sigma * logits[:, :3]).sum(0), atol=1e-6)
    # d sum / d v = sum_n sigma'(n) * x_n * sum_j (alpha_j z_nj + beta_j)
    inner = logits[:, :3] @ calib.alpha.detach() + calib.beta.detach().sum()
    dsig = (sigma * (1 - sigma))[:, 0] * inner
    assert torch.allclose(
        calib.confidence.weight.grad[0], dsig @ feats, atol=1e-5)
    assert torch.allclose(calib.confidence.bias.grad[0], dsig.sum(), atol=1e-5)


# --------------------------------------------------------------------------
# Special cases (paper Table 2)
# --------------------------------------------------------------------------


def test_lws():
    torch.manual_seed(11)
    calib = LWSCalibration(4)
    calib.init_weights()
    assert [n for n, _ in calib.named_parameters()] == ['alpha']
    logits = torch.randn(5, 4)
    assert torch.equal(calib(logits), logits)  # identity at init
    with torch.no_grad():
        calib.alpha.copy_(torch.randn(4))
    assert torch.allclose(calib(logits), (1 + calib.alpha.detach()) * logits)
    dense_logits = torch.randn(2, 4, 3, 3)
    assert torch.allclose(
        calib(dense_logits, None),
        (1 + calib.alpha.detach()).view(1, 4, 1, 1) * dense_logits)
    calib(logits).sum().backward()
    assert torch.allclose(calib.alpha.grad, logits.sum(0))
    calib.init_weights()  # a second call keeps the trained values
    assert not torch.equal(calib.alpha.detach(), torch.zeros(4))

    bg = LWSCalibration(3, uncalibrated_columns=(-1, ), alpha_init=0.5)
    bg.init_weights()
    logits = torch.randn(5, 4)
    out = bg(logits)
    assert torch.equal(out[:, 3], logits[:, 3])
    assert torch.allclose(out[:, :3], 1.5 * logits[:, :3])


@pytest.mark.parametrize('tau', [0.0, 0.5, 1.0, 2.0])
def test_tau_norm(tau):
    torch.manual_seed(12)
    classifier = nn.Linear(6, 4)
    calib = TauNormCalibration(4, tau=tau)
    assert list(calib.parameters()) == [] and calib.state_dict() == {}
    feats = torch.randn(5, 6)
    logits = classifier(feats)
    out = calib(logits, feats, classifier_weight=classifier.weight)
    norms = classifier.weight.detach().norm(dim=1)
    assert torch.allclose(out, logits / norms**tau, atol=1e-6)
    if tau == 1.0:
        # bias-free: the logits of a classifier with unit-norm rows
        w = classifier.weight.detach()
        out = calib(feats @ w.t(), classifier_weight=w)
        assert torch.allclose(
            out, feats @ F.normalize(w, dim=1).t(), atol=1e-6)
    if tau == 0.0:
        assert torch.allclose(out, logits)


def test_tau_norm_background_and_conv_weight():
    torch.manual_seed(13)
    calib = TauNormCalibration(3, tau=1.0, uncalibrated_columns=(-1, ))
    weight = torch.rand(4, 6) + 0.1  # (C + 1, D) with the background row
    logits = torch.randn(2, 4)
    expected = logits.clone()
    expected[:, :3] /= weight[:3].norm(dim=1)
    out = calib(logits, classifier_weight=weight)
    assert torch.equal(out[:, 3], logits[:, 3])
    assert torch.allclose(out, expected, atol=1e-6)
    # only the foreground rows (C, D) also works
    assert torch.allclose(
        calib(logits, classifier_weight=weight[:3]), expected, atol=1e-6)
    # dense logits with a 1x1 conv weight (K, D, 1, 1)
    seg = TauNormCalibration(3, tau=0.5)
    conv_w = torch.rand(3, 6, 1, 1) + 0.1
    dense = torch.randn(2, 3, 2, 2)
    scale = conv_w.flatten(1).norm(dim=1).pow(-0.5).view(1, 3, 1, 1)
    assert torch.allclose(
        seg(dense, classifier_weight=conv_w), dense * scale, atol=1e-6)


def test_logit_adjust():
    calib = LogitAdjustCalibration(3, class_freq=[100, 10, 1], tau=1.0)
    assert list(calib.parameters()) == [] and calib.state_dict() == {}
    logits = torch.zeros(1, 3)
    # -log(n_j / 111): log(1.11), log(11.1), log(111)
    expected = torch.tensor([[0.1043600, 2.4069451, 4.7095302]])
    assert torch.allclose(calib(logits), expected, atol=1e-6)
    logits = torch.randn(4, 3)
    r = torch.tensor([100.0, 10.0, 1.0]) / 111
    half = LogitAdjustCalibration(3, [100, 10, 1], tau=0.5)
    assert torch.allclose(half(logits), logits - 0.5 * r.log(), atol=1e-6)
    # background column untouched
    bg = LogitAdjustCalibration(
        3, [100, 10, 1], tau=1.0, uncalibrated_columns=(-1, ))
    logits = torch.randn(4, 4)
    out = bg(logits)
    assert torch.equal(out[:, 3], logits[:, 3])
    assert torch.allclose(out[:, :3], logits[:, :3] - r.log(), atol=1e-6)
    # dense logits
    dense = torch.randn(2, 3, 2, 2)
    assert torch.allclose(
        calib(dense), dense - r.log().view(1, 3, 1, 1), atol=1e-6)


def test_logit_adjust_from_json(tmp_path):
    from mmdisalign.utils.class_freq import save_class_freq
    path = tmp_path / 'freq.json'
    save_class_freq(str(path), [30, 60, 10])
    calib = LogitAdjustCalibration(3, class_freq=str(path), tau=2.0)
    r = torch.tensor([0.3, 0.6, 0.1])
    assert torch.allclose(calib.margin, -2.0 * r.log(), atol=1e-6)


def test_base_class_and_helper():
    modules = [
        DisAlignCalibration(2, 3),
        LWSCalibration(2),
        TauNormCalibration(2),
        LogitAdjustCalibration(2, [1, 2])
    ]
    for m in modules:
        assert isinstance(m, BaseCalibration) and is_calibration(m)
        # one shared implementation of the formula
        assert type(m).calibrate is BaseCalibration.calibrate
        assert type(m).forward is BaseCalibration.forward
    assert not is_calibration(nn.Linear(2, 2))


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


def test_logit_and_feature_errors():
    calib = DisAlignCalibration(4, 3)
    with pytest.raises(ValueError, match='expected 4 logit columns.*got 5'):
        calib(torch.zeros(2, 5), torch.zeros(2, 3))
    # a feature of another width: torch's own error
    with pytest.raises(RuntimeError, match='shapes cannot be multiplied'):
        calib(torch.zeros(2, 4), torch.zeros(2, 6))
    with pytest.raises(ValueError, match='batch size 3 does not match.*2'):
        calib(torch.zeros(2, 4), torch.zeros(3, 3))
    with pytest.raises(ValueError, match='needs the classifier input'):
        calib(torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r'dense=False.*set dense=True'):
        calib(torch.zeros(2, 4, 3, 3), torch.zeros(2, 3, 3, 3))
    with pytest.raises(ValueError, match=r'dense=False\) expects feats'):
        calib(torch.zeros(2, 4), torch.zeros(2, 3, 1, 1))
    bg = DisAlignCalibration(4, 3, uncalibrated_columns=(-1, ))
    with pytest.raises(
            ValueError,
            match=r'expected 5 logit columns = num_classes 4 \+ 1 '
            r'uncalibrated \(4,\).*got 4'):
        bg(torch.zeros(2, 4), torch.zeros(2, 3))

    dense = DisAlignCalibration(4, 3, dense=True)
    with pytest.raises(ValueError, match=r'dense=True\) expects logits'):
        dense(torch.zeros(2, 4), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r'dense=True\) expects feats'):
        dense(torch.zeros(2, 4, 2, 2), torch.zeros(2, 3))
    with pytest.raises(
            ValueError,
            match=r'spatial size \(4, 4\) does not match logits spatial size '
            r'\(2, 2\).*no interpolation'):
        dense(torch.zeros(2, 4, 2, 2), torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match='expected 4 logit columns.*got 3'):
        dense(torch.zeros(2, 3, 2, 2), torch.zeros(2, 3, 2, 2))
    with pytest.raises(ValueError, match='with the classes on dim 1'):
        LWSCalibration(4)(torch.zeros(4))
    with pytest.raises(AttributeError, match="'list' object"):
        LWSCalibration(4)([[0.0] * 4])


def test_constructor_errors():
    with pytest.raises(ValueError, match="init_mode must be one of.*'bad'"):
        DisAlignCalibration(3, 4, init_mode='bad')
    with pytest.raises(ValueError, match='num_classes must be >= 1.*got 0'):
        DisAlignCalibration(0, 4)
    with pytest.raises(ValueError, match='num_classes must be >= 1'):
        LWSCalibration(-1)
    with pytest.raises(ValueError, match='in_channels must be >= 1'):
        DisAlignCalibration(3, 0)
    with pytest.raises(
            ValueError,
            match=r'uncalibrated column 4 is out of range for 4 logit'):
        DisAlignCalibration(3, 4, uncalibrated_columns=(4, ))
    with pytest.raises(ValueError, match='uncalibrated column -5 is out of'):
        LWSCalibration(3, uncalibrated_columns=(-5, ))
    with pytest.raises(ValueError, match=r'name the same logit column twice'):
        DisAlignCalibration(3, 4, uncalibrated_columns=(-1, 4))
    with pytest.raises(ValueError, match=r'name the same logit column twice'):
        LWSCalibration(3, uncalibrated_columns=(0, 0))
    with pytest.raises(ValueError, match='tau must be finite'):
        TauNormCalibration(3, tau=float('nan'))
    # configs that are not dicts: Python's and mmengine's own errors
    with pytest.raises(ValueError, match='dictionary update sequence'):
        DisAlignCalibration(3, 4, confidence_norm_cfg='BN')
    with pytest.raises(TypeError, match='cfg should be a dict'):
        DisAlignCalibration(3, 4, confidence_init=0.1)
    with pytest.raises(ValueError, match='3'):
        LogitAdjustCalibration(3, class_freq=[1, 2])
    with pytest.raises(ValueError, match='class 1'):
        LogitAdjustCalibration(3, class_freq=[1, 0, 2])


def test_tau_norm_errors():
    calib = TauNormCalibration(3, uncalibrated_columns=(-1, ))
    with pytest.raises(ValueError, match='needs the classifier weight'):
        calib(torch.zeros(2, 4))
    with pytest.raises(
            ValueError, match=r'classifier_weight of shape \(3 or 4, D'):
        calib(torch.zeros(2, 4), classifier_weight=torch.ones(5, 2))
    with pytest.raises(ValueError, match=r'classes \[1\] have zero norm'):
        calib(
            torch.zeros(2, 4),
            classifier_weight=torch.tensor([[1.0], [0.0], [2.0]]))


def test_tau_norm_reads_the_norms_once_per_weight_version(monkeypatch):
    calib = TauNormCalibration(3)
    weight = torch.ones(3, 2)
    reads = []
    tolist = torch.Tensor.tolist
    monkeypatch.setattr(torch.Tensor, 'tolist',
                        lambda t: reads.append(1) or tolist(t))
    for _ in range(3):
        calib(torch.zeros(2, 3), classifier_weight=weight)
    assert len(reads) == 1  # no host-device sync after the first forward
    with torch.no_grad():
        weight[1] = 0  # an in-place update is seen
    with pytest.raises(ValueError, match=r'classes \[1\] have zero norm'):
        calib(torch.zeros(2, 3), classifier_weight=weight)
    assert len(reads) == 2


# --------------------------------------------------------------------------
# Registry: root registration is found from every downstream scope
# --------------------------------------------------------------------------

_CFGS = [
    dict(type='DisAlignCalibration', num_classes=3, in_channels=4),
    dict(type='LWSCalibration', num_classes=3),
    dict(type='TauNormCalibration', num_classes=3, tau=0.5),
    dict(type='LogitAdjustCalibration', num_classes=3, class_freq=[3, 2, 1]),
]


@pytest.mark.parametrize('scope', ['mmpretrain', 'mmseg', 'mmdet'])
def test_build_from_downstream_scope(scope):
    import importlib
    registry = importlib.import_module(f'{scope}.registry').MODELS
    expected = [
        DisAlignCalibration, LWSCalibration, TauNormCalibration,
        LogitAdjustCalibration
    ]
    with DefaultScope.overwrite_default_scope(scope):
        assert DefaultScope.get_current_instance().scope_name == scope
        for cfg, cls in zip(_CFGS, expected):
            module = registry.build(dict(cfg))
            assert type(module) is cls and module.num_classes == 3
    logits = torch.randn(2, 3)
    built = ROOT_MODELS.build(dict(_CFGS[3]))
    assert torch.allclose(
        built(logits),
        logits - (torch.tensor([3.0, 2.0, 1.0]) / 6).log(),
        atol=1e-6)


# --------------------------------------------------------------------------
# decay_mode: what weight decay pulls to 0
# --------------------------------------------------------------------------


class _ReferenceHead(nn.Module):
    """The reference heads' calibration with their own parameters:
    ``logit_scale`` s, ``logit_bias`` b, ``confidence_layer``.
    ``form='paper'`` (detection, segmentation): sigma * (s z + b) +
    (1 - sigma) z; ``form='cls'``: (1 + sigma s) z + sigma b."""

    def __init__(self, calib, form):
        super().__init__()
        self.form = form
        self.logit_scale = nn.Parameter(calib.get_alpha().detach() +
                                        (1.0 if form == 'paper' else 0.0))
        self.logit_bias = nn.Parameter(calib.beta.detach().clone())
        self.confidence_layer = nn.Linear(calib.in_channels, 1)
        self.confidence_layer.load_state_dict(calib.confidence.state_dict())

    def forward(self, logits, feats):
        sigma = torch.sigmoid(self.confidence_layer(feats))
        if self.form == 'paper':
            return sigma * (self.logit_scale * logits +
                            self.logit_bias) + (1 - sigma) * logits
        return (1 + sigma * self.logit_scale) * logits + (
            sigma * self.logit_bias)


def _sgd_steps(module, forward, steps=5, weight_decay=0.05):
    """Plain SGD with momentum and weight decay on every parameter."""
    gen = torch.Generator().manual_seed(3)
    optim = torch.optim.SGD(
        module.parameters(), lr=0.5, momentum=0.9, weight_decay=weight_decay)
    for _ in range(steps):
        feats = torch.rand(8, 5, generator=gen)
        logits = 3 * torch.randn(8, 4, generator=gen)
        labels = torch.randint(0, 4, (8, ), generator=gen)
        F.cross_entropy(forward(logits, feats), labels).backward()
        optim.step()
        optim.zero_grad()


def test_decay_mode_reference_is_the_reference_update():
    """Detection / segmentation form: with decay_mode='reference' the
    parameter is the reference ``logit_scale`` s = 1 + alpha, and SGD with
    weight decay gives the reference update; the default decays alpha."""
    torch.manual_seed(0)
    ours = DisAlignCalibration(4, 5, decay_mode='reference')
    default = DisAlignCalibration(4, 5)
    state = ours.state_dict()
    state['alpha'] = state.pop('scale') - 1
    default.load_state_dict(state)
    assert torch.equal(ours.scale.detach(), torch.ones(4))
    assert torch.equal(ours.get_alpha().detach(), torch.zeros(4))
    assert [n for n, _ in ours.named_parameters()
            ] == ['scale', 'beta', 'confidence.weight', 'confidence.bias']
    ref = _ReferenceHead(ours, 'paper')

    _sgd_steps(ours, ours)
    _sgd_steps(ref, ref)
    _sgd_steps(default, default)
    torch.testing.assert_close(
        ours.scale.detach(), ref.logit_scale.detach(), rtol=0, atol=1e-6)
    torch.testing.assert_close(
        ours.beta.detach(), ref.logit_bias.detach(), rtol=0, atol=1e-6)
    torch.testing.assert_close(
        ours.confidence.weight.detach(),
        ref.confidence_layer.weight.detach(),
        rtol=0,
        atol=1e-6)
    # The default decays alpha = s - 1 towards 0 instead of s: after 5
    # steps with weight decay 0.05 the scales differ by far more.
    gap = (default.alpha.detach() + 1 - ref.logit_scale.detach()).abs()
    assert gap.max() > 0.1
    # Without weight decay the two modes are the same update.
    torch.manual_seed(0)
    a = DisAlignCalibration(4, 5, decay_mode='reference')
    torch.manual_seed(0)
    b = DisAlignCalibration(4, 5)
    _sgd_steps(a, a, weight_decay=0)
    _sgd_steps(b, b, weight_decay=0)
    torch.testing.assert_close(
        a.get_alpha().detach(), b.alpha.detach(), rtol=0, atol=1e-6)


def test_decay_mode_reference_cls_is_alpha():
    """Classification form: the reference ``logit_scale`` is alpha itself,
    so both decay modes give the reference update (and 'reference' only
    renames the parameter)."""
    torch.manual_seed(0)
    ours = DisAlignCalibration(4, 5, init_mode='reference_cls')
    torch.manual_seed(0)
    renamed = DisAlignCalibration(
        4, 5, init_mode='reference_cls', decay_mode='reference')
    assert torch.equal(renamed.scale.detach(), torch.ones(4))
    assert renamed.get_alpha() is renamed.scale
    ref = _ReferenceHead(ours, 'cls')
    for module in (ours, renamed, ref):
        _sgd_steps(module, module)
    for calib in (ours, renamed):
        torch.testing.assert_close(
            calib.get_alpha().detach(),
            ref.logit_scale.detach(),
            rtol=0,
            atol=1e-6)
        torch.testing.assert_close(
            calib.beta.detach(), ref.logit_bias.detach(), rtol=0, atol=1e-6)


def test_decay_mode_errors_and_repr():
    with pytest.raises(ValueError, match="decay_mode must be one of"):
        DisAlignCalibration(4, 5, decay_mode='scale')
    calib = DisAlignCalibration(4, 5, decay_mode='reference')
    assert "decay_mode='reference'" in repr(calib)
    assert 'decay_mode' not in repr(DisAlignCalibration(4, 5))
