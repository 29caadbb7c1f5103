"""DisAlign decode heads: identity at init, the per-pixel formula, stage-1
checkpoint compatibility, the reference confidence and bad input."""
import glob
import os.path as osp
import re

import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.decode_heads import (DepthwiseSeparableASPPHead, FCNHead,
                                       PSPHead, SegformerHead, UPerHead)
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import mmdisalign.seg  # noqa: F401
from mmdisalign.models.calibration import DisAlignCalibration, LWSCalibration
from mmdisalign.seg import (DisAlignDecodeHeadMixin,
                            DisAlignDepthwiseSeparableASPPHead,
                            DisAlignFCNHead, DisAlignSegformerHead,
                            DisAlignUPerHead)
from mmdisalign.utils.class_freq import grw_weights, save_class_freq

FCN_ARGS = dict(
    in_channels=6,
    channels=5,
    num_convs=1,
    concat_input=True,
    num_classes=3,
    dropout_ratio=0.0,
    norm_cfg=dict(type='BN'))
ASPP_ARGS = dict(
    in_channels=8,
    channels=4,
    dilations=(1, 2),
    c1_in_channels=3,
    c1_channels=2,
    num_classes=3,
    dropout_ratio=0.0,
    norm_cfg=dict(type='BN'))


def _seeded(build, seed=0):
    torch.manual_seed(seed)
    module = build()
    module.init_weights()
    return module


def _capture_conv_seg_input(head):
    """Record what conv_seg receives (the feature fed to cls_seg when
    dropout is off)."""
    store = {}

    def hook(module, args):
        store['feat'] = args[0].detach().clone()

    head.conv_seg.register_forward_pre_hook(hook)
    return store


def _randomize_calibration(head, seed=1):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in head.calibration.parameters():
            param.copy_(torch.randn(param.shape, generator=gen))


def test_registered_subclasses_of_upstream_heads():
    assert MODELS.get('DisAlignFCNHead') is DisAlignFCNHead
    assert (MODELS.get('DisAlignDepthwiseSeparableASPPHead')
            is DisAlignDepthwiseSeparableASPPHead)
    assert issubclass(DisAlignFCNHead, FCNHead)
    assert issubclass(DisAlignDepthwiseSeparableASPPHead,
                      DepthwiseSeparableASPPHead)


@pytest.mark.parametrize('upstream,ours,args', [
    (FCNHead, DisAlignFCNHead, FCN_ARGS),
    (DepthwiseSeparableASPPHead, DisAlignDepthwiseSeparableASPPHead,
     ASPP_ARGS),
])
def test_upstream_checkpoint_loads_and_identity_at_init(upstream, ours, args):
    base = _seeded(lambda: upstream(**args))
    head = _seeded(lambda: ours(**args), seed=5)
    result = head.load_state_dict(base.state_dict(), strict=False)
    # Only the new calibration keys are missing; nothing is renamed.
    assert result.unexpected_keys == []
    assert sorted(result.missing_keys) == [
        'calibration.alpha', 'calibration.beta', 'calibration.confidence.bias',
        'calibration.confidence.weight'
    ]
    assert set(base.state_dict()) < set(head.state_dict())
    base.eval()
    head.eval()
    inputs = [torch.randn(2, 3, 8, 8), torch.randn(2, 8, 4, 4)]
    if upstream is FCNHead:
        inputs = [torch.randn(2, 6, 4, 4)]
    assert torch.equal(head.calibration.alpha, torch.zeros(3))
    assert torch.equal(head.calibration.beta, torch.zeros(3))
    torch.testing.assert_close(head(inputs), base(inputs))


@pytest.mark.parametrize('ours,args,inputs', [
    (DisAlignFCNHead, FCN_ARGS, [torch.randn(2, 6, 4, 4)]),
    (DisAlignDepthwiseSeparableASPPHead, ASPP_ARGS,
     [torch.randn(2, 3, 8, 8),
      torch.randn(2, 8, 4, 4)]),
])
def test_per_pixel_formula_on_the_conv_seg_input(ours, args, inputs):
    head = _seeded(lambda: ours(**args))
    _randomize_calibration(head)
    head.eval()
    store = _capture_conv_seg_input(head)
    out = head(inputs)
    feat = store['feat']
    # feat is the cls_seg input: (N, channels, H, W) at the head resolution
    assert feat.shape[1] == args['channels']
    assert out.shape == (2, 3) + feat.shape[2:]
    z = F.conv2d(feat, head.conv_seg.weight, head.conv_seg.bias)
    conv = head.calibration.confidence
    w, b = conv.weight.view(-1), conv.bias.item()
    # sigma per pixel: sigmoid(sum_c w_c f_c + b), an (N, 1, H, W) map
    sigma = torch.sigmoid((feat * w.view(1, -1, 1, 1)).sum(1, True) + b)
    alpha = head.calibration.alpha.view(1, -1, 1, 1)
    beta = head.calibration.beta.view(1, -1, 1, 1)
    torch.testing.assert_close(out, (1 + sigma * alpha) * z + sigma * beta)
    # paper form sigma * (s z + b) + (1 - sigma) z with s = 1 + alpha
    torch.testing.assert_close(
        out,
        sigma * ((1 + alpha) * z + beta) + (1 - sigma) * z)


def test_confidence_reads_the_feature_before_dropout():
    torch.manual_seed(0)
    head = DisAlignFCNHead(**dict(FCN_ARGS, dropout_ratio=0.5))
    head.init_weights()
    _randomize_calibration(head)
    head.train()
    feat = torch.randn(2, 5, 4, 4)
    torch.manual_seed(3)
    out = head.cls_seg(feat)
    torch.manual_seed(3)
    z = head.conv_seg(head.dropout(feat))
    sigma = head.calibration.get_confidence(feat)
    alpha = head.calibration.alpha.view(1, -1, 1, 1)
    beta = head.calibration.beta.view(1, -1, 1, 1)
    torch.testing.assert_close(out, (1 + sigma * alpha) * z + sigma * beta)


def test_reference_confidence_conv_norm_relu_sigmoid():
    head = _seeded(lambda: DisAlignFCNHead(confidence='reference', **FCN_ARGS))
    confidence = head.calibration.confidence
    assert [type(m) for m in confidence
            ] == [torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.ReLU]
    assert confidence[0].bias is None  # conv without bias before the norm
    assert confidence[1].weight.item() == 1 and confidence[1].bias.item() == 0
    head.eval()
    feat = torch.randn(2, 5, 4, 4)
    sigma = head.calibration.get_confidence(feat)
    eps = confidence[1].eps
    conv = F.conv2d(feat, confidence[0].weight)
    torch.testing.assert_close(sigma,
                               torch.sigmoid(F.relu(conv / (1 + eps)**0.5)))
    # the ReLU makes sigma >= 0.5 (the reference quirk)
    assert sigma.min().item() >= 0.5
    # explicit keys of the calibration config win over the mode
    head = DisAlignFCNHead(
        confidence='reference',
        calibration=dict(type='DisAlignCalibration', confidence_act_cfg=None),
        **FCN_ARGS)
    assert [type(m) for m in head.calibration.confidence
            ] == [torch.nn.Conv2d, torch.nn.BatchNorm2d]


def test_other_calibrations_plug_in():
    head = _seeded(lambda: DisAlignFCNHead(
        calibration=dict(type='TauNormCalibration', tau=1.0), **FCN_ARGS))
    head.eval()
    store = _capture_conv_seg_input(head)
    out = head([torch.randn(1, 6, 3, 3)])
    z = head.conv_seg(store['feat'])
    norms = head.conv_seg.weight.flatten(1).norm(dim=1).view(1, -1, 1, 1)
    torch.testing.assert_close(out, z / norms)
    head = DisAlignFCNHead(calibration=dict(type='LWSCalibration'), **FCN_ARGS)
    assert head.calibration.alpha.shape == (3, )


def test_a_disalign_variant_of_another_head_takes_two_lines():

    class DisAlignPSPHead(DisAlignDecodeHeadMixin, PSPHead):
        pass

    args = dict(
        in_channels=4,
        channels=3,
        pool_scales=(1, 2),
        num_classes=2,
        dropout_ratio=0.0,
        norm_cfg=dict(type='BN'))
    base = _seeded(lambda: PSPHead(**args))
    head = _seeded(lambda: DisAlignPSPHead(**args))
    head.load_state_dict(base.state_dict(), strict=False)
    base.eval()
    head.eval()
    inputs = [torch.randn(2, 4, 4, 4)]
    torch.testing.assert_close(head(inputs), base(inputs))
    assert isinstance(head.calibration, DisAlignCalibration)
    assert head.calibration.in_channels == 3


def _grw_loss(class_freq, **kwargs):
    return dict(
        type='GRWCrossEntropyLoss',
        class_freq=class_freq,
        rho=0.2,
        avg_mode='pixel',
        **kwargs)


def test_loss_is_grw_over_all_pixels_of_calibrated_logits():
    freq = [50., 10., 2.]
    head = _seeded(
        lambda: DisAlignFCNHead(loss_decode=_grw_loss(freq), **FCN_ARGS))
    _randomize_calibration(head)
    head.eval()
    inputs = [torch.randn(2, 6, 4, 4)]
    label = torch.randint(0, 3, (2, 1, 8, 8))
    label[0, 0, :2] = 255  # ignored pixels still count in the mean
    samples = []
    for i in range(2):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=label[i])
        samples.append(sample)
    losses = head.loss(inputs, samples, train_cfg={})
    logits = F.interpolate(
        head(inputs), size=(8, 8), mode='bilinear', align_corners=False)
    weights = torch.tensor(grw_weights(freq, 0.2), dtype=torch.float32)
    ce = F.cross_entropy(
        logits,
        label[:, 0],
        weight=weights,
        ignore_index=255,
        reduction='none')
    expected = ce.sum() / ce.numel()
    torch.testing.assert_close(losses['loss_grw'], expected)


def test_only_the_calibration_gets_gradients_when_the_rest_is_frozen():
    head = _seeded(lambda: DisAlignFCNHead(confidence='reference', **FCN_ARGS))
    with torch.no_grad():  # a non-identity calibration (init: 0, 0)
        head.calibration.alpha.fill_(0.5)
        head.calibration.beta.fill_(-0.2)
    for name, param in head.named_parameters():
        param.requires_grad = name.startswith('calibration.')
    head.train()
    head([torch.randn(2, 6, 4, 4)]).square().mean().backward()
    for name, param in head.named_parameters():
        if name.startswith('calibration.'):
            assert param.grad is not None and param.grad.abs().sum() > 0
        else:
            assert param.grad is None, name


def test_grw_class_count_must_match_the_head(tmp_path):
    with pytest.raises(
            ValueError,
            match=r'DisAlignFCNHead predicts out_channels=3 classes but its '
            r'loss_decode GRWCrossEntropyLoss has 4 class frequencies from '
            r"its class_freq list; class_freq must count the classes of this "
            r"model's training set: write its frequency file with "
            r'tools/analysis_tools/seg_pixel_freq\.py'):
        DisAlignFCNHead(loss_decode=_grw_loss([4., 3., 2., 1.]), **FCN_ARGS)
    path = tmp_path / 'freq.json'
    save_class_freq(path, [5, 4, 3, 2, 1], count_type='pixels')
    with pytest.raises(
            ValueError,
            match=r'predicts out_channels=3 classes.*5 class frequencies '
            r"from the class_freq file '.*freq\.json'"):
        DisAlignFCNHead(
            loss_decode=[dict(type='CrossEntropyLoss'),
                         _grw_loss(str(path))],
            **FCN_ARGS)
    # A background column the head does not score.
    with pytest.raises(
            ValueError,
            match=r'3 class frequencies from its class_freq list \+ 1 '
            r'background column \(with_background=True\); the classes '
            r'agree.*with_background=False'):
        DisAlignFCNHead(
            loss_decode=_grw_loss([3., 2., 1.], with_background=True),
            **FCN_ARGS)
    # A binary head with one sigmoid column counts out_channels, not
    # num_classes.
    with pytest.raises(
            ValueError,
            match=r'predicts out_channels=1 classes.*has 2 class '
            r'frequencies'):
        DisAlignFCNHead(
            loss_decode=_grw_loss([3., 1.]),
            **dict(FCN_ARGS, num_classes=2, out_channels=1))
    # The head's count: accepted.
    save_class_freq(path, [5, 4, 1], count_type='pixels')
    head = DisAlignFCNHead(
        loss_decode=[dict(type='CrossEntropyLoss'),
                     _grw_loss(str(path))],
        **FCN_ARGS)
    assert head.loss_decode[1].num_classes == head.out_channels == 3


def test_bad_calibration_configs():
    with pytest.raises(ValueError, match='num_classes=5.*out_channels'):
        DisAlignFCNHead(
            calibration=dict(type='DisAlignCalibration', num_classes=5),
            **FCN_ARGS)
    with pytest.raises(ValueError, match='in_channels=7.*channels'):
        DisAlignFCNHead(
            calibration=dict(type='DisAlignCalibration', in_channels=7),
            **FCN_ARGS)
    with pytest.raises(ValueError, match='confidence must be one of'):
        DisAlignFCNHead(confidence='paper', **FCN_ARGS)
    with pytest.raises(KeyError, match='not registered'):
        DisAlignFCNHead(calibration=dict(type='NoSuchCalib'), **FCN_ARGS)
    with pytest.raises(TypeError, match='not a mmdisalign BaseCalibration'):
        DisAlignFCNHead(calibration=dict(type='FCNHead'), **FCN_ARGS)


def test_seg_imports_mmseg_only():
    """No module of mmdisalign.seg imports mmdet, mmpretrain or the other
    task adapters. (mmseg.models itself imports mmdet, and mmdet
    mmpretrain, when they are installed: mmseg's Mask2Former heads.)"""
    package = osp.dirname(mmdisalign.seg.__file__)
    pattern = re.compile(
        r'^\s*(from|import) +(mmdet|mmpretrain|mmdisalign\.(cls|det))\b|'
        r'^\s*from +\.\.(cls|det)\b', re.M)
    paths = glob.glob(osp.join(package, '**', '*.py'), recursive=True)
    assert len(paths) >= 6
    for path in paths:
        with open(path) as file:
            assert not pattern.search(file.read()), path


UPER_ARGS = dict(
    in_channels=[4, 6],
    in_index=[0, 1],
    channels=5,
    pool_scales=(1, 2),
    num_classes=3,
    dropout_ratio=0.0,
    norm_cfg=dict(type='BN'))
SEGFORMER_ARGS = dict(
    in_channels=[4, 6],
    in_index=[0, 1],
    channels=5,
    num_classes=3,
    dropout_ratio=0.0,
    norm_cfg=dict(type='BN'))


@pytest.mark.parametrize('name,upstream,args', [
    ('DisAlignUPerHead', UPerHead, UPER_ARGS),
    ('DisAlignSegformerHead', SegformerHead, SEGFORMER_ARGS),
])
def test_uper_and_segformer_heads(name, upstream, args):
    ours = MODELS.get(name)
    assert issubclass(ours, upstream) and MODELS.get(name) is getattr(
        mmdisalign.seg, name)
    base = _seeded(lambda: upstream(**args))
    head = _seeded(lambda: ours(**args), seed=5)
    result = head.load_state_dict(base.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert sorted(result.missing_keys) == [
        'calibration.alpha', 'calibration.beta', 'calibration.confidence.bias',
        'calibration.confidence.weight'
    ]
    base.eval()
    head.eval()
    inputs = [torch.randn(2, 4, 8, 8), torch.randn(2, 6, 4, 4)]
    torch.testing.assert_close(head(inputs), base(inputs))  # identity init
    # the per-pixel formula on the input of conv_seg
    _randomize_calibration(head)
    store = _capture_conv_seg_input(head)
    out = head(inputs)
    feat = store['feat']
    assert feat.shape == (2, 5, 8, 8) and out.shape == (2, 3, 8, 8)
    z = head.conv_seg(feat)
    sigma = head.calibration.get_confidence(feat)
    alpha = head.calibration.alpha.view(1, -1, 1, 1)
    beta = head.calibration.beta.view(1, -1, 1, 1)
    torch.testing.assert_close(out, (1 + sigma * alpha) * z + sigma * beta)
    # the GRW loss back-propagates into the calibration only
    head = _seeded(lambda: ours(loss_decode=_grw_loss([5., 2., 1.]), **args))
    _randomize_calibration(head)
    for key, param in head.named_parameters():
        param.requires_grad = key.startswith('calibration.')
    samples = []
    for _ in range(2):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, 16, 16)))
        samples.append(sample)
    losses = head.loss(inputs, samples, train_cfg={})
    assert torch.isfinite(losses['loss_grw']) and losses['loss_grw'] > 0
    losses['loss_grw'].backward()
    for key, param in head.named_parameters():
        if key.startswith('calibration.'):
            assert param.grad is not None and param.grad.abs().sum() > 0
        else:
            assert param.grad is None, key


def test_head_without_conv_seg_names_the_head_and_the_fix():

    class OwnClassifierHead(FCNHead):
        """A head that predicts with its own layer, as PointHead does."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            del self.conv_seg

    class DisAlignOwnClassifierHead(DisAlignDecodeHeadMixin,
                                    OwnClassifierHead):
        pass

    with pytest.raises(
            TypeError,
            match=r'DisAlignOwnClassifierHead: DisAlignDecodeHeadMixin '
            r'calibrates the output of `conv_seg`.*has no `conv_seg`.*'
            r'override `cls_seg`'):
        DisAlignOwnClassifierHead(**FCN_ARGS)


def test_calibration_sized_for_other_classes_names_the_decode_head():
    with pytest.raises(
            ValueError,
            match=r'num_classes=5 does not match the decode head '
            r"DisAlignUPerHead \(num_classes=3, from the head's "
            r'out_channels\); leave num_classes out'):
        DisAlignUPerHead(
            calibration=dict(type='DisAlignCalibration', num_classes=5),
            **UPER_ARGS)
    with pytest.raises(
            ValueError,
            match=r'DisAlignSegformerHead: the calibration takes 5 logit '
            r'columns but the decode head predicts out_channels=3'):
        DisAlignSegformerHead(
            calibration=LWSCalibration(num_classes=5), **SEGFORMER_ARGS)
