"""Classification heads: closed forms and stage-1 checkpoint compatibility."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmdisalign.cls  # noqa: F401

K, D, N = 5, 8, 4


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmpretrain')


def _feats(seed=0, relu=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, D, generator=g)
    return (x.relu() if relu else x, )


def _randomize(head, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in head.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return head


def test_linear_head_is_fc_plus_closed_form_calibration():
    head = _randomize(
        MODELS.build(
            dict(type='DisAlignLinearClsHead', num_classes=K, in_channels=D)))
    (x, ) = _feats()
    out = head((x, ))
    w, b = head.fc.weight, head.fc.bias
    conf = head.calibration.confidence_layer
    z = x @ w.T + b
    sigma = torch.sigmoid(x @ conf.weight.T + conf.bias)  # (N, 1)
    alpha, beta = head.calibration.alpha, head.calibration.beta
    expected = (1 + sigma * alpha) * z + sigma * beta
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_reference_cls_init_survives_init_weights():
    head = MODELS.build(
        dict(type='DisAlignLinearClsHead', num_classes=K, in_channels=D))
    head.init_weights()
    calib = head.calibration
    assert torch.all(calib.confidence_layer.weight == 0.1)
    assert torch.all(calib.alpha == 1.0) and torch.all(calib.beta == 0.0)
    # fc got the upstream N(0, 0.01) init, not the constant.
    assert head.fc.weight.std().item() < 0.05
    # Large post-ReLU features give sigma ~ 1: the head outputs about 2z.
    x = torch.full((2, D), 10.0)
    z = head.fc(x)
    sigma = torch.sigmoid(0.1 * 10.0 * D + calib.confidence_layer.bias)
    torch.testing.assert_close(head((x, )), (1 + sigma) * z)
    torch.testing.assert_close(head((x, )), 2 * z, rtol=1e-3, atol=1e-6)


def test_stage1_linear_checkpoint_loads_without_renaming():
    stage1 = LinearClsHead(num_classes=K, in_channels=D)
    _randomize(stage1, seed=3)
    head = MODELS.build(
        dict(type='DisAlignLinearClsHead', num_classes=K, in_channels=D))
    result = head.load_state_dict(stage1.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert result.missing_keys and all(
        k.startswith('calibration.') for k in result.missing_keys)
    assert sorted(result.missing_keys) == sorted(
        'calibration.' + k for k in head.calibration.state_dict())
    assert torch.equal(head.fc.weight, stage1.fc.weight)
    assert torch.equal(head.fc.bias, stage1.fc.bias)


def test_head_loss_is_grw_on_calibrated_logits():
    counts = [100, 50, 20, 10, 5]
    head = _randomize(
        MODELS.build(
            dict(
                type='DisAlignLinearClsHead',
                num_classes=K,
                in_channels=D,
                loss=dict(
                    type='GRWCrossEntropyLoss', class_freq=counts, rho=1.2))))
    feats = _feats()
    labels = torch.tensor([0, 2, 4, 4])
    samples = [DataSample().set_gt_label(int(y)) for y in labels]
    loss = head.loss(feats, samples)['loss']
    r = torch.tensor(counts, dtype=torch.float64)
    w = (r / r.sum())**-1.2
    w = (w / w.sum() * K).float()
    ce = F.cross_entropy(head(feats), labels, reduction='none')
    expected = (w[labels] * ce).sum() / w[labels].sum()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


def test_posthoc_baselines_through_the_head():
    stage1 = _randomize(LinearClsHead(num_classes=K, in_channels=D), 4)
    (x, ) = _feats()
    z = stage1.fc(x)
    norms = stage1.fc.weight.norm(dim=1)
    counts = torch.tensor([100., 50., 20., 10., 5.])

    def build(calibration):
        head = MODELS.build(
            dict(
                type='DisAlignLinearClsHead',
                num_classes=K,
                in_channels=D,
                calibration=calibration))
        head.load_state_dict(stage1.state_dict(), strict=False)
        return head

    tau = build(dict(type='TauNormCalibration', tau=0.7))
    torch.testing.assert_close(tau((x, )), z / norms**0.7)
    la = build(
        dict(
            type='LogitAdjustCalibration', class_freq=counts.tolist(),
            tau=1.0))
    torch.testing.assert_close(la((x, )), z - torch.log(counts / counts.sum()))
    lws = build(dict(type='LWSCalibration', num_classes=K))
    with torch.no_grad():
        lws.calibration.alpha.copy_(torch.arange(K) * 0.5)
    torch.testing.assert_close(lws((x, )), z * (1 + torch.arange(K) * 0.5))


def test_calibration_num_classes_mismatch_is_an_error():
    with pytest.raises(ValueError, match='num_classes=3'):
        MODELS.build(
            dict(
                type='DisAlignLinearClsHead',
                num_classes=K,
                in_channels=D,
                calibration=dict(type='LWSCalibration', num_classes=3)))


def test_cosine_head_closed_form():
    head = _randomize(
        MODELS.build(
            dict(
                type='CosineClsHead', num_classes=K, in_channels=D,
                scale=10.)), 5)
    with torch.no_grad():
        head.scale.fill_(10.)
    (x, ) = _feats(relu=False)
    cos = F.normalize(x, dim=1) @ F.normalize(head.fc.weight, dim=1).T
    torch.testing.assert_close(head((x, )), 10. * cos)
    assert head.fc.bias is None
    assert head.scale.requires_grad


def test_disalign_cosine_head_sigma_from_normalised_feature():
    stage1 = _randomize(
        MODELS.build(dict(type='CosineClsHead', num_classes=K, in_channels=D)),
        6)
    head = MODELS.build(
        dict(type='DisAlignCosineClsHead', num_classes=K, in_channels=D))
    result = head.load_state_dict(stage1.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert all(k.startswith('calibration.') for k in result.missing_keys)
    assert torch.equal(head.scale, stage1.scale)
    _randomize(head.calibration, 7)
    (x, ) = _feats()
    xn = F.normalize(x, dim=1)
    z = stage1((x, ))
    conf = head.calibration.confidence_layer
    sigma = torch.sigmoid(xn @ conf.weight.T + conf.bias)
    alpha, beta = head.calibration.alpha, head.calibration.beta
    expected = (1 + sigma * alpha) * z + sigma * beta
    torch.testing.assert_close(head((x, )), expected, rtol=1e-5, atol=1e-5)
