"""Classification heads: closed forms and stage-1 checkpoint compatibility."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmpretrain.models.heads import LinearClsHead, MultiLabelLinearClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmdisalign.cls  # noqa: F401
from mmdisalign.cls import DisAlignClsHeadMixin, DisAlignStackedLinearClsHead
from mmdisalign.models.calibration import LWSCalibration
from mmdisalign.utils.class_freq import save_class_freq

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


# --- the mixin: stacked-linear and ViT heads, bad input ---------------------

STACKED = dict(
    type='StackedLinearClsHead',
    num_classes=K,
    in_channels=D,
    mid_channels=[6, 7],
    norm_cfg=dict(type='BN1d'))
VIT = dict(
    type='VisionTransformerClsHead',
    num_classes=K,
    in_channels=D,
    hidden_dim=12)
IDENTITY = dict(type='DisAlignCalibration', init_mode='identity')
CALIBRATION_KEYS = [
    'calibration.alpha', 'calibration.beta', 'calibration.confidence.bias',
    'calibration.confidence.weight'
]


def _pair(cfg, seed, **kwargs):
    """A randomised upstream head and its DisAlign variant with the
    upstream state dict loaded (the stage-1 checkpoint)."""
    upstream = _randomize(MODELS.build(cfg), seed)
    head = MODELS.build(dict(cfg, type='DisAlign' + cfg['type'],
                             **kwargs)).eval()
    result = head.load_state_dict(upstream.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert sorted(result.missing_keys) == CALIBRATION_KEYS
    return upstream.eval(), head


@pytest.mark.parametrize('cfg,layer,width', [
    (STACKED, 'layers.2.fc', 7),
    (VIT, 'layers.head', 12),
    (dict(VIT, hidden_dim=None), 'layers.head', D),
])
def test_new_heads_identity_at_init_and_classifier_input(cfg, layer, width):
    upstream, head = _pair(cfg, 8, calibration=IDENTITY)
    assert head.get_classifier() is head.get_submodule(layer)
    assert head.calibration.in_channels == width
    feats = _feats(relu=False)
    # identity init: exactly the upstream head with the same weights
    torch.testing.assert_close(head(feats), upstream(feats))
    # the formula on the classifier input (pre_logits), not on feats
    _randomize(head.calibration, 9)
    x = head.pre_logits(feats)
    assert x.shape == (N, width)
    z = upstream(feats)
    conf = head.calibration.confidence_layer
    sigma = torch.sigmoid(x @ conf.weight.T + conf.bias)
    alpha, beta = head.calibration.alpha, head.calibration.beta
    torch.testing.assert_close(
        head(feats), (1 + sigma * alpha) * z + sigma * beta)


@pytest.mark.parametrize('cfg', [STACKED, VIT], ids=['stacked', 'vit'])
def test_new_heads_reference_init_and_grw_loss_backward(cfg):
    counts = [100, 50, 20, 10, 5]
    loss = dict(type='GRWCrossEntropyLoss', class_freq=counts, rho=1.2)
    upstream, head = _pair(dict(cfg, loss=loss), 10)
    head.calibration.init_weights()
    # the default reference init: (1 + sigma) z, the same ranking
    feats = _feats(relu=False)
    x = head.pre_logits(feats)
    conf = head.calibration.confidence_layer
    assert torch.all(conf.weight == 0.1)
    sigma = torch.sigmoid(x @ conf.weight.T + conf.bias)
    z = upstream(feats)
    torch.testing.assert_close(head(feats), (1 + sigma) * z)
    assert torch.equal(head(feats).argmax(1), z.argmax(1))
    # stage 2: only the calibration trains
    head.train()
    for name, param in head.named_parameters():
        param.requires_grad = name.startswith('calibration.')
    samples = [DataSample().set_gt_label(i % K) for i in range(N)]
    value = head.loss(feats, samples)['loss']
    assert torch.isfinite(value) and value > 0
    value.backward()
    for name, param in head.named_parameters():
        if name.startswith('calibration.'):
            assert param.grad is not None and param.grad.abs().sum() > 0
        else:
            assert param.grad is None, name


def test_vit_head_init_weights_keeps_the_calibration_init():
    head = MODELS.build(dict(VIT, type='DisAlignVisionTransformerClsHead'))
    head.init_weights()
    # upstream: Constant(0) on every Linear, Lecun normal on pre_logits
    assert torch.all(head.layers.head.weight == 0)
    assert head.layers.pre_logits.weight.abs().sum() > 0
    # the calibration's own reference init, not the head's Constant(0)
    calib = head.calibration
    assert torch.all(calib.confidence_layer.weight == 0.1)
    assert torch.all(calib.alpha == 1) and torch.all(calib.beta == 0)


def test_classifier_layer_not_found_names_the_head_and_the_fix():
    from mmpretrain.models.heads import EfficientFormerClsHead

    from mmdisalign.cls import DisAlignClsHeadMixin

    class DisAlignEfficientFormerClsHead(DisAlignClsHeadMixin,
                                         EfficientFormerClsHead):
        pass  # its classifier is `head`, not the default `fc`

    with pytest.raises(
            AttributeError,
            match=r"DisAlignEfficientFormerClsHead has no classifier layer "
            r"'fc'.*set `classifier_layer` on "
            r'DisAlignEfficientFormerClsHead'):
        DisAlignEfficientFormerClsHead(num_classes=K, in_channels=D)

    class NotALayer(DisAlignEfficientFormerClsHead):
        classifier_layer = 'loss_module'

    with pytest.raises(
            TypeError,
            match=r"NotALayer: the classifier layer 'loss_module' is a "
            r'CrossEntropyLoss without a \(num_classes, D\) weight'):
        NotALayer(num_classes=K, in_channels=D)

    class Hidden(DisAlignStackedLinearClsHead):
        classifier_layer = 'layers.0.fc'

    with pytest.raises(
            ValueError,
            match=r"Hidden: the classifier layer 'layers.0.fc' has 6 outputs "
            r'but the head predicts num_classes=5; set `classifier_layer`'):
        Hidden(num_classes=K, in_channels=D, mid_channels=[6, 7])

    class OutOfRange(DisAlignStackedLinearClsHead):
        classifier_layer = 'layers.5.fc'

    with pytest.raises(AttributeError, match="no classifier layer 'layers.5"):
        OutOfRange(num_classes=K, in_channels=D, mid_channels=[6])


def test_calibration_sized_for_other_classes_names_the_head_and_the_fix():
    with pytest.raises(
            ValueError,
            match=r'calibration num_classes=3 does not match the '
            r'classification head DisAlignVisionTransformerClsHead '
            r'\(num_classes=5.*leave num_classes out'):
        MODELS.build(
            dict(
                VIT,
                type='DisAlignVisionTransformerClsHead',
                calibration=dict(type='DisAlignCalibration', num_classes=3)))
    # the input width of the classifier layer, not the head's in_channels
    with pytest.raises(
            ValueError,
            match=r'in_channels=8 does not match.*in_channels=12, from the '
            r"head's layers.head.weight input width"):
        MODELS.build(
            dict(
                VIT,
                type='DisAlignVisionTransformerClsHead',
                calibration=dict(type='DisAlignCalibration', in_channels=D)))
    # a calibration module built for 3 classes
    with pytest.raises(
            ValueError,
            match=r'DisAlignStackedLinearClsHead: the calibration takes 3 '
            r'logit columns but the head predicts num_classes=5'):
        MODELS.build(
            dict(
                STACKED,
                type='DisAlignStackedLinearClsHead',
                calibration=LWSCalibration(num_classes=3)))


def test_grw_class_count_must_match_the_cls_head(tmp_path):
    path = tmp_path / 'freq.json'
    save_class_freq(path, [5, 4, 3, 2], count_type='images')

    def build(class_freq, **kwargs):
        return MODELS.build(
            dict(
                type='DisAlignLinearClsHead',
                num_classes=K,
                in_channels=D,
                loss=dict(
                    type='GRWCrossEntropyLoss',
                    class_freq=class_freq,
                    **kwargs)))

    with pytest.raises(
            ValueError,
            match=r'DisAlignLinearClsHead predicts num_classes=5 classes '
            r'but its loss GRWCrossEntropyLoss has 4 class frequencies from '
            r"the class_freq file '.*freq\.json'; class_freq must count the "
            r"classes of this model's training set: write its frequency "
            r'file with tools/analysis_tools/class_freq_cls\.py'):
        build(str(path))
    # A background column the head does not score.
    with pytest.raises(
            ValueError,
            match=r'predicts num_classes=5 classes but its loss '
            r'GRWCrossEntropyLoss has 5 class frequencies from its '
            r'class_freq list \+ 1 background column \(with_background=True'
            r'\); the classes agree.*with_background=False'):
        build([5, 4, 3, 2, 1], with_background=True)
    # The head's count: accepted.
    save_class_freq(path, [5, 4, 3, 2, 1], count_type='images')
    head = build(str(path))
    assert head.loss_module.num_classes == head.num_classes == K
    assert head.loss_module.class_weight.numel() == K


class _MultiLabelHead(DisAlignClsHeadMixin, MultiLabelLinearClsHead):
    """The multi-label head of docs/custom_heads.md (not registered)."""


def test_softmax_grw_loss_on_a_multi_label_head_is_refused():
    grw = dict(type='GRWCrossEntropyLoss', class_freq=[5, 4, 3, 2, 1])
    with pytest.raises(ValueError) as info:
        _MultiLabelHead(num_classes=K, in_channels=D, loss=grw)
    message = str(info.value)
    assert message.startswith(
        '_MultiLabelHead is a multi-label head (a MultiLabelClsHead: one '
        'sigmoid score per class, multi-hot targets), but its loss '
        'GRWCrossEntropyLoss is the softmax GRW loss')
    assert ("Use a sigmoid loss, e.g. loss=dict(type='FocalLoss') or "
            "loss=dict(type='CrossEntropyLoss', use_sigmoid=True) (BCE), "
            'or a single-label head (e.g. DisAlignLinearClsHead)') in message
    # the fixes build and train
    samples = [DataSample().set_gt_label([0, i % K]) for i in range(N)]
    for loss in (dict(type='FocalLoss'),
                 dict(type='CrossEntropyLoss', use_sigmoid=True)):
        head = _MultiLabelHead(num_classes=K, in_channels=D, loss=loss)
        value = head.loss(_feats(), samples)['loss']
        assert torch.isfinite(value) and value > 0
    single = MODELS.build(
        dict(
            type='DisAlignLinearClsHead',
            num_classes=K,
            in_channels=D,
            loss=grw))
    samples = [DataSample().set_gt_label(i % K) for i in range(N)]
    value = single.loss(_feats(), samples)['loss']
    assert torch.isfinite(value) and value > 0


def test_cosine_scale_must_be_positive():
    with pytest.raises(ValueError, match='scale must be positive, got 0'):
        MODELS.build(
            dict(type='CosineClsHead', num_classes=K, in_channels=D, scale=0))


def test_bad_calibration_types_in_a_cls_head():
    with pytest.raises(TypeError, match='must be a config dict'):
        MODELS.build(
            dict(
                type='DisAlignLinearClsHead',
                num_classes=K,
                in_channels=D,
                calibration='DisAlignCalibration'))
    with pytest.raises(
            KeyError,
            match=r"'NoSuchCalibration' is not registered; import "
            r'mmdisalign'):
        MODELS.build(
            dict(
                type='DisAlignLinearClsHead',
                num_classes=K,
                in_channels=D,
                calibration=dict(type='NoSuchCalibration')))
    with pytest.raises(TypeError, match='not a mmdisalign BaseCalibration'):
        MODELS.build(
            dict(
                type='DisAlignLinearClsHead',
                num_classes=K,
                in_channels=D,
                calibration=dict(type='LinearClsHead')))
