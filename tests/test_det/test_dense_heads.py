"""DisAlign dense heads (RetinaNet, FCOS, ATSS) and the GRW focal loss:
identity at init against the upstream head with the same weights, the
per-anchor calibration by hand, checkpoints, losses, errors."""
import copy

import numpy as np
import pytest
import torch
from mmdet.models.losses import FocalLoss
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import mmdisalign.det  # noqa: F401
from mmdisalign.models.losses import GRWFocalLoss
from mmdisalign.utils.class_freq import grw_weights, save_class_freq

NUM_CLASSES = 4
FREQ = [40, 10, 5, 1]

RETINA = dict(
    type='RetinaHead',
    num_classes=NUM_CLASSES,
    in_channels=8,
    stacked_convs=1,
    feat_channels=8,
    anchor_generator=dict(
        type='AnchorGenerator',
        octave_base_scale=4,
        scales_per_octave=1,
        ratios=[0.5, 1.0, 2.0],
        strides=[8, 16]),
    bbox_coder=dict(
        type='DeltaXYWHBBoxCoder',
        target_means=[.0, .0, .0, .0],
        target_stds=[1.0, 1.0, 1.0, 1.0]),
    loss_cls=dict(
        type='FocalLoss',
        use_sigmoid=True,
        gamma=2.0,
        alpha=0.25,
        loss_weight=1.0),
    loss_bbox=dict(type='L1Loss', loss_weight=1.0),
    train_cfg=dict(
        assigner=dict(
            type='MaxIoUAssigner',
            pos_iou_thr=0.5,
            neg_iou_thr=0.4,
            min_pos_iou=0,
            ignore_iof_thr=-1),
        sampler=dict(type='PseudoSampler'),
        allowed_border=-1,
        pos_weight=-1,
        debug=False),
    test_cfg=dict(
        nms_pre=100,
        min_bbox_size=0,
        score_thr=0.05,
        nms=dict(type='nms', iou_threshold=0.5),
        max_per_img=20))
FCOS = dict(
    type='FCOSHead',
    num_classes=NUM_CLASSES,
    in_channels=8,
    stacked_convs=1,
    feat_channels=8,
    strides=[8, 16],
    regress_ranges=((-1, 64), (64, 1e8)),
    norm_cfg=None,
    train_cfg=dict(allowed_border=-1, pos_weight=-1, debug=False),
    test_cfg=RETINA['test_cfg'])
ATSS = dict(
    type='ATSSHead',
    num_classes=NUM_CLASSES,
    in_channels=8,
    stacked_convs=1,
    feat_channels=8,
    norm_cfg=None,
    anchor_generator=dict(
        type='AnchorGenerator',
        ratios=[1.0],
        octave_base_scale=8,
        scales_per_octave=1,
        strides=[8, 16]),
    bbox_coder=RETINA['bbox_coder'],
    loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
    train_cfg=dict(
        assigner=dict(type='ATSSAssigner', topk=9),
        allowed_border=-1,
        pos_weight=-1,
        debug=False),
    test_cfg=RETINA['test_cfg'])
UPSTREAM = dict(RetinaHead=RETINA, FCOSHead=FCOS, ATSSHead=ATSS)
CLS_LAYER = dict(
    RetinaHead='retina_cls', FCOSHead='conv_cls', ATSSHead='atss_cls')


@pytest.fixture(autouse=True)
def _mmdet_scope():
    init_default_scope('mmdet')


def feats(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(2, 8, 8, 8, generator=g),
        torch.randn(2, 8, 4, 4, generator=g)
    ]


def samples():
    metas = []
    for i in range(2):
        sample = DetDataSample(
            metainfo=dict(img_shape=(64, 64), pad_shape=(64, 64)))
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor([[4., 4., 30., 36.], [20., 10., 60., 50.]]),
            labels=torch.tensor([i, 3]))
        metas.append(sample)
    return metas


def grw_focal(**kwargs):
    return dict(
        dict(type='GRWFocalLoss', class_freq=FREQ, use_sigmoid=True, rho=0.8),
        **kwargs)


def build_pair(upstream, **disalign):
    torch.manual_seed(0)
    ref = MODELS.build(ConfigDict(UPSTREAM[upstream]))
    ref.init_weights()
    cfg = dict(UPSTREAM[upstream], type='DisAlign' + upstream, **disalign)
    head = MODELS.build(ConfigDict(cfg))
    head.init_weights()
    result = head.load_state_dict(ref.state_dict(), strict=False)
    return ref, head, result


@pytest.mark.parametrize('upstream', list(UPSTREAM))
def test_identity_at_init_and_checkpoint(upstream):
    ref, head, result = build_pair(upstream)
    # Upstream names kept: only the calibration is new.
    assert result.unexpected_keys == []
    assert sorted(result.missing_keys) == [
        'calibration.alpha', 'calibration.beta', 'calibration.confidence.bias',
        'calibration.confidence.weight'
    ]
    layer = getattr(head, CLS_LAYER[upstream])
    assert head.calibration.in_channels == layer.in_channels == 8
    assert head.calibration.dense
    ref.eval()
    head.eval()
    with torch.no_grad():
        out_ref = ref(feats())
        out = head(feats())
    for a, b in zip(out_ref, out):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, rtol=0, atol=0)
    # predictions too
    with torch.no_grad():
        pred_ref = ref.predict(feats(), samples())
        pred = head.predict(feats(), samples())
    for a, b in zip(pred_ref, pred):
        torch.testing.assert_close(a.scores, b.scores, rtol=0, atol=0)


@pytest.mark.parametrize('upstream', list(UPSTREAM))
def test_calibration_off_is_upstream(upstream):
    ref, head, result = build_pair(upstream, calibration=None)
    assert result.missing_keys == [] and head.calibration is None
    with torch.no_grad():
        head.eval()
        ref.eval()
        torch.testing.assert_close(
            ref(feats())[0][0], head(feats())[0][0], rtol=0, atol=0)


def randomize(calib, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in calib.parameters():
            p.copy_(torch.randn(p.shape, generator=g))


def test_per_anchor_calibration_by_hand():
    """Channel a * K + k (anchor a, class k) gets
    (1 + sigma * alpha_k) * z + sigma * beta_k, sigma per location."""
    ref, head, _ = build_pair('RetinaHead')
    randomize(head.calibration, 1)
    x = feats()[0]
    cls_feat = x
    for conv in ref.cls_convs:
        cls_feat = conv(cls_feat)
    with torch.no_grad():
        z = ref.retina_cls(cls_feat)  # (2, 3 * 4, 8, 8)
        out = head.forward_single(x)[0]
        conf = head.calibration.confidence
        sigma = torch.sigmoid(conf(cls_feat))  # (2, 1, 8, 8)
    alpha = head.calibration.alpha.detach()
    beta = head.calibration.beta.detach()
    assert z.shape == out.shape == (2, 12, 8, 8)
    for a in range(3):
        for k in range(NUM_CLASSES):
            c = a * NUM_CLASSES + k
            expected = (1 + sigma[:, 0] * alpha[k]) * z[:, c] + \
                sigma[:, 0] * beta[k]
            torch.testing.assert_close(out[:, c], expected)


def test_softmax_dense_head_keeps_background():
    """A softmax dense head (num_classes + 1 columns per anchor, background
    last) calibrates the classes and passes the background through."""
    loss = dict(
        type='GRWCrossEntropyLoss',
        class_freq=FREQ,
        rho=0.8,
        with_background=True)
    cfg = dict(RETINA, type='DisAlignRetinaHead', loss_cls=loss)
    head = MODELS.build(ConfigDict(cfg))
    head.init_weights()
    assert not head.use_sigmoid_cls and head.cls_out_channels == 5
    assert head.calibration.uncalibrated_columns == (4, )
    randomize(head.calibration, 2)
    with torch.no_grad():
        out = head.forward_single(feats()[0])[0]
        hooks = head.retina_cls._forward_hooks.copy()
        head.retina_cls._forward_hooks.clear()
        raw = head.forward_single(feats()[0])[0]
        head.retina_cls._forward_hooks.update(hooks)
    for a in range(3):
        torch.testing.assert_close(
            out[:, 5 * a + 4], raw[:, 5 * a + 4], rtol=0, atol=0)
        assert not torch.allclose(out[:, 5 * a], raw[:, 5 * a])
    losses = head.loss(feats(), samples())
    assert torch.isfinite(sum(v.sum() for v in losses['loss_cls']))


@pytest.mark.parametrize('upstream', list(UPSTREAM))
def test_loss_backward_reaches_the_calibration(upstream):
    _, head, _ = build_pair(upstream, loss_cls=grw_focal())
    assert isinstance(head.loss_cls, GRWFocalLoss) and head.use_sigmoid_cls
    randomize(head.calibration, 3)
    # stage 2: the head holds stage-1 weights, all but the calibration are
    # frozen (the calibration refuses to train them without the freeze hook)
    for name, param in head.named_parameters():
        param.requires_grad_(name.startswith('calibration.'))
    losses = head.loss(feats(), samples())
    loss_cls = losses['loss_cls']  # a list per level, or one tensor (FCOS)
    total = sum(
        v.sum()
        for v in (loss_cls if isinstance(loss_cls, list) else [loss_cls]))
    assert torch.isfinite(total)
    total.backward()
    assert head.calibration.alpha.grad.abs().sum() > 0
    assert head.calibration.beta.grad.abs().sum() > 0
    assert head.calibration.confidence.weight.grad.abs().sum() > 0


def test_tau_norm_per_class_over_anchors():
    _, head, _ = build_pair(
        'RetinaHead', calibration=dict(type='TauNormCalibration', tau=1.0))
    with torch.no_grad():
        w = head.retina_cls.weight  # (3 * 4, 8, 3, 3)
        norms = w.view(3, 4, -1).transpose(0, 1).flatten(1).norm(dim=1)
        head.eval()
        x = feats()[0]
        out = head.forward_single(x)[0]
        head.retina_cls._forward_hooks.clear()
        raw = head.forward_single(x)[0]
    torch.testing.assert_close(
        out.view(2, 3, 4, 8, 8),
        raw.view(2, 3, 4, 8, 8) / norms.view(1, 1, 4, 1, 1))


# ---------------------------------------------------------------------------
# GRWFocalLoss


def test_grw_focal_rho0_equals_mmdet_focal_loss():
    torch.manual_seed(0)
    score = torch.randn(30, NUM_CLASSES)
    label = torch.randint(0, NUM_CLASSES + 1, (30, ))
    label[:3] = torch.tensor([0, 1, 2])
    weight = (torch.rand(30) > 0.2).float()
    weight[:3] = 1
    focal = FocalLoss(use_sigmoid=True, gamma=2.0, alpha=0.25)
    grw = GRWFocalLoss(FREQ, rho=0.0, avg_mode='avg_factor')
    for avg in (None, 7.0):
        torch.testing.assert_close(
            grw(score, label, weight, avg_factor=avg),
            focal(score, label, weight, avg_factor=avg))
    torch.testing.assert_close(
        grw(score, label, weight, reduction_override='none'),
        focal(score, label, weight, reduction_override='none'))
    # 'weighted' with rho 0: sum over the number of weighted positives
    num_pos = ((label < NUM_CLASSES).float() * weight).sum()
    torch.testing.assert_close(
        GRWFocalLoss(FREQ, rho=0.0)(score, label, weight),
        focal(score, label, weight, avg_factor=num_pos))


def test_grw_focal_by_hand():
    score = torch.tensor([[2.0, -1.0, 0.5, 0.0], [-3.0, 1.0, 0.0, 2.0],
                          [0.3, 0.2, -0.1, -2.0]])
    label = torch.tensor([2, 4, 3])  # class 2, background, class 3
    loss = GRWFocalLoss(FREQ, rho=0.8, gamma=2.0, alpha=0.25)
    w = np.append(grw_weights(FREQ, 0.8), 1.0)
    np.testing.assert_allclose(loss.class_weight.numpy(), w, rtol=1e-6)
    assert abs(w[:4].sum() - 4) < 1e-9
    p = torch.sigmoid(score).double()
    total = 0.
    for i, y in enumerate(label.tolist()):
        for k in range(4):
            t = float(y == k)
            pt = p[i, k] if t else 1 - p[i, k]
            a = 0.25 if t else 0.75
            total += w[y] * a * (1 - pt)**2 * -torch.log(pt)
    expected = total / (w[2] + w[3])
    torch.testing.assert_close(
        loss(score, label).double(), expected, rtol=1e-5, atol=0)
    assert loss(score, label, reduction_override='none').shape == (3, 4)
    torch.testing.assert_close(
        loss(score, label, reduction_override='sum').double(),
        total,
        rtol=1e-5,
        atol=0)
    # no positive: the sum (divided by 1), not NaN
    background = torch.full((3, ), 4)
    torch.testing.assert_close(
        loss(score, background),
        loss(score, background, reduction_override='sum'))
    s = score.clone().requires_grad_()
    z = loss(s, torch.full((3, ), 4))
    z.backward()
    assert torch.isfinite(s.grad).all()


def test_grw_focal_errors():
    with pytest.raises(
            ValueError, match='needs use_sigmoid=True.*'
            'GRWCrossEntropyLoss'):
        GRWFocalLoss(FREQ, use_sigmoid=False)
    loss = GRWFocalLoss(FREQ)
    with pytest.raises(
            ValueError,
            match=r'5 class scores.*4 class frequencies.*softmax head.*'
            r'GRWCrossEntropyLoss\(with_background=True\)'):
        loss(torch.zeros(3, 5), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match='num_classes=5'):
        GRWFocalLoss(FREQ, num_classes=5)


# ---------------------------------------------------------------------------
# Bad input


def test_sigmoid_head_with_softmax_grw_loss():
    softmax = dict(type='GRWCrossEntropyLoss', class_freq=FREQ, rho=0.8)
    with pytest.raises(
            ValueError,
            match=r"DisAlignRetinaHead: loss_cls GRWCrossEntropyLoss is the "
            r"softmax GRW loss.*with_background=True.*type='GRWFocalLoss', "
            r'use_sigmoid=True'):
        build_pair('RetinaHead', loss_cls=softmax)
    with pytest.raises(
            ValueError,
            match=r'DisAlignFCOSHead: loss_cls GRWCrossEntropyLoss is the '
            r"softmax GRW loss, but use_sigmoid=True.*type='GRWFocalLoss'"):
        build_pair('FCOSHead', loss_cls=dict(softmax, use_sigmoid=True))


def test_softmax_head_with_sigmoid_grw_loss():
    loss = grw_focal()
    del loss['use_sigmoid']  # the head reads use_sigmoid from the config
    with pytest.raises(
            ValueError,
            match=r'DisAlignATSSHead: loss_cls GRWFocalLoss is a sigmoid '
            r"loss.*softmax head.*type='GRWFocalLoss', use_sigmoid=True"):
        build_pair('ATSSHead', loss_cls=loss)


def test_grw_loss_of_another_class_count(tmp_path):
    # Sigmoid: num_classes columns, no background.
    with pytest.raises(
            ValueError,
            match=r'DisAlignRetinaHead predicts num_classes=4 classes but its '
            r'loss_cls GRWFocalLoss has 3 class frequencies from its '
            r"class_freq list; class_freq must count the classes of this "
            r"model's training set: write its frequency file with "
            r'tools/analysis_tools/lvis_class_freq\.py'):
        build_pair('RetinaHead', loss_cls=grw_focal(class_freq=[3, 2, 1]))
    path = tmp_path / 'freq5.json'
    save_class_freq(path, [5, 4, 3, 2, 1])
    with pytest.raises(
            ValueError,
            match=r'DisAlignFCOSHead predicts num_classes=4 classes but its '
            r'loss_cls GRWFocalLoss has 5 class frequencies from the '
            r"class_freq file '.*freq5\.json'"):
        build_pair('FCOSHead', loss_cls=grw_focal(class_freq=str(path)))
    # Softmax: num_classes + 1 columns, background last.
    softmax = dict(
        type='GRWCrossEntropyLoss', class_freq=[3, 2, 1], with_background=True)
    with pytest.raises(
            ValueError,
            match=r'DisAlignATSSHead predicts num_classes=4 classes \+ 1 '
            r'background column but its loss_cls GRWCrossEntropyLoss has 3 '
            r'class frequencies from its class_freq list \+ 1 background '
            r'column \(with_background=True\); class_freq must count'):
        build_pair('ATSSHead', loss_cls=softmax)
    # The head's count: accepted, sigmoid and softmax.
    head = build_pair('RetinaHead', loss_cls=grw_focal())[1]
    assert head.loss_cls.num_classes == head.cls_out_channels == NUM_CLASSES
    head = MODELS.build(
        ConfigDict(
            UPSTREAM['ATSSHead'],
            type='DisAlignATSSHead',
            loss_cls=dict(softmax, class_freq=FREQ)))
    assert head.loss_cls.num_classes == NUM_CLASSES
    assert head.cls_out_channels == NUM_CLASSES + 1


def test_classifier_layer_not_found():
    from mmdet.models.dense_heads import RetinaHead

    from mmdisalign.det import DisAlignDenseHeadMixin

    class Unnamed(DisAlignDenseHeadMixin, RetinaHead):
        pass

    cfg = copy.deepcopy(RETINA)
    cfg.pop('type')
    with pytest.raises(
            ValueError,
            match=r"Unnamed: the classification conv None is not an "
            r"nn.Conv2d.*convs are \['retina_cls', 'retina_reg'\].*"
            r'cls_layer_name'):
        Unnamed(**cfg)
    assert Unnamed(cls_layer='retina_cls', **cfg).cls_layer == 'retina_cls'


def test_calibration_for_another_class_count():
    with pytest.raises(
            ValueError,
            match=r'must calibrate the 4 class logits.*num_classes=3'):
        MODELS.build(
            dict(
                RETINA,
                type='DisAlignRetinaHead',
                calibration=dict(type='DisAlignCalibration', num_classes=3)))


def test_deepcopy_calibrates_with_its_own_calibration():
    """The hook is bound to its head: a copy (EMA, TTA) uses its own."""
    _, head, _ = build_pair('RetinaHead')
    clone = copy.deepcopy(head)
    with torch.no_grad():
        clone.calibration.beta.fill_(1.0)
        x = feats()[0]
        out = head.forward_single(x)[0]
        out_clone = clone.forward_single(x)[0]
        sigma = torch.sigmoid(
            clone.calibration.confidence(clone.cls_convs[0](x)))
    torch.testing.assert_close(out_clone, out + sigma)


def test_dense_calibration_with_anchor_dim():
    """(N, K, A, H, W) logits == each anchor's (N, K, H, W) slice
    calibrated alone with the same per-location sigma."""
    from mmdisalign.models.calibration import DisAlignCalibration
    calib = DisAlignCalibration(4, 6, dense=True)
    randomize(calib, 5)
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 4, 3, 5, 5, generator=g)
    x = torch.randn(2, 6, 5, 5, generator=g)
    with torch.no_grad():
        out = calib(logits, x)
        for a in range(3):
            torch.testing.assert_close(out[:, :, a], calib(logits[:, :, a], x))
    with pytest.raises(ValueError, match=r'spatial size \(4, 4\) does not'):
        calib(logits, torch.zeros(2, 6, 4, 4))
