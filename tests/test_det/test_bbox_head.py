"""DisAlignShared2FCBBoxHead and DisAlignShared4Conv1FCBBoxHead: the upstream
head plus a calibration of the foreground logits (closed forms), its losses,
checkpoints, copies, compilation, Cascade stages and errors."""
import copy
import io
import math

import pytest
import torch
import torch.nn.functional as F
from mmdet.models.roi_heads.bbox_heads import (Shared2FCBBoxHead,
                                               Shared4Conv1FCBBoxHead)
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox2roi
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from mmdisalign.det import (DisAlignConvFCBBoxHeadMixin,
                            DisAlignShared2FCBBoxHead,
                            DisAlignShared4Conv1FCBBoxHead)
from mmdisalign.models.calibration import DisAlignCalibration
from mmdisalign.models.losses import GRWCrossEntropyLoss
from mmdisalign.utils.class_freq import save_class_freq


@pytest.fixture(autouse=True)
def _mmdet_scope():
    """Every test here builds in the mmdet scope (tests/conftest.py clears
    the default scope around each test)."""
    init_default_scope('mmdet')


C = 3  # foreground classes
SMALL = dict(in_channels=4, roi_feat_size=2, fc_out_channels=8, num_classes=C)


def build(**kwargs):
    cfg = dict(type='DisAlignShared2FCBBoxHead', **SMALL)
    cfg.update(kwargs)
    head = MODELS.build(cfg)
    head.init_weights()
    return head


def upstream(**kwargs):
    cfg = dict(type='Shared2FCBBoxHead', **SMALL)
    cfg.update(kwargs)
    head = MODELS.build(cfg)
    head.init_weights()
    return head


def fc_cls_io(head, x):
    """The input of ``fc_cls`` (the calibration's feature) and its raw
    logits in ``head(x)``, seen by a hook that runs before the
    calibration's (the calibrated head's ``fc_cls`` returns calibrated
    logits)."""
    seen = {}

    def capture(layer, args, out):
        seen.update(feats=args[0].detach(), raw=out.detach())

    handle = head.fc_cls.register_forward_hook(capture, prepend=True)
    try:
        head(x)
    finally:
        handle.remove()
    return seen['feats'], seen['raw']


def set_calibration(head, alpha, beta, conf_w, conf_b):
    calib = head.calibration
    with torch.no_grad():
        calib.alpha.copy_(torch.tensor(alpha))
        calib.beta.copy_(torch.tensor(beta))
        calib.confidence_layer.weight.copy_(torch.tensor([conf_w]))
        calib.confidence_layer.bias.fill_(conf_b)


def test_registered_and_subclass():
    assert MODELS.get('DisAlignShared2FCBBoxHead') is DisAlignShared2FCBBoxHead
    assert issubclass(DisAlignShared2FCBBoxHead, Shared2FCBBoxHead)


def test_stage1_checkpoint_loads_without_renaming():
    torch.manual_seed(0)
    plain, ours = upstream(), build()
    result = ours.load_state_dict(plain.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert sorted(result.missing_keys) == [
        'calibration.alpha', 'calibration.beta', 'calibration.confidence.bias',
        'calibration.confidence.weight'
    ]
    # Every upstream tensor kept its name and value.
    ours_sd = ours.state_dict()
    for key, value in plain.state_dict().items():
        assert torch.equal(ours_sd[key], value), key


@pytest.mark.parametrize('cosine', [False, True])
def test_identity_at_init_equals_upstream(cosine):
    """At init the calibrated head computes exactly the upstream logits."""
    torch.manual_seed(0)
    extra = {}
    if cosine:
        extra = dict(
            cls_predictor_cfg=dict(
                type='NormedLinear', tempearture=20, bias=False))
    plain, ours = upstream(**extra), build(**extra)
    ours.load_state_dict(plain.state_dict(), strict=False)
    calib = ours.calibration
    assert calib.alpha.tolist() == [0.0] * C
    assert calib.beta.tolist() == [0.0] * C
    w = calib.confidence_layer.weight
    assert w.shape == (1, 8) and calib.confidence_layer.bias.item() == 0.0
    assert 0 < w.abs().max().item() < 0.1  # N(0, 0.01)
    x = torch.randn(5, 4, 2, 2)
    z_ref, d_ref = plain(x)
    z, d = ours(x)
    assert z.shape == (5, C + 1)
    assert torch.equal(z, z_ref) and torch.equal(d, d_ref)
    # The feature the calibration sees is what fc_cls sees.
    feats = F.relu(plain.shared_fcs[1](F.relu(plain.shared_fcs[0](
        x.flatten(1)))))
    assert torch.allclose(fc_cls_io(ours, x)[0], feats)


def test_closed_form_foreground_only():
    """zhat_c = (1 + s*alpha_c) z_c + s*beta_c for c < C; background as is,
    with s = sigmoid(v . x + b) from the flattened RoI feature x."""
    torch.manual_seed(1)
    head = build()
    alpha, beta = [0.5, -0.25, 2.0], [1.0, -2.0, 0.5]
    conf_w = [0.1 * (i + 1) for i in range(8)]
    set_calibration(head, alpha, beta, conf_w, -0.3)
    x = torch.randn(4, 4, 2, 2)
    feats, z = fc_cls_io(head, x)
    out, _ = head(x)
    for i in range(4):
        s = 1 / (
            1 +
            math.exp(-(sum(w * f
                           for w, f in zip(conf_w, feats[i].tolist())) - 0.3)))
        for c in range(C):
            expected = (1 + s * alpha[c]) * z[i, c].item() + s * beta[c]
            assert math.isclose(
                out[i, c].item(), expected, rel_tol=1e-5, abs_tol=1e-5)
        assert out[i, C].item() == z[i, C].item()  # background unchanged


def test_cosine_logits_and_raw_feature_confidence():
    """NormedLinear gives 20 * cos(x, w_c) for all C + 1 classes (mmdet
    divides by norm + 1e-6); the confidence uses the raw feature."""
    torch.manual_seed(2)
    head = build(
        cls_predictor_cfg=dict(
            type='NormedLinear', tempearture=20, bias=False))
    assert head.fc_cls.bias is None
    set_calibration(head, [1.0, 0.0, -0.5], [0.0, 3.0, 0.0], [0.05] * 8, 0.0)
    x = torch.rand(3, 4, 2, 2) + 0.5
    feats, _ = fc_cls_io(head, x)
    w = head.fc_cls.weight
    cos = (feats / (feats.norm(dim=1, keepdim=True) + 1e-6)) @ (
        w / (w.norm(dim=1, keepdim=True) + 1e-6)).t()
    out, _ = head(x)
    s = torch.sigmoid(0.05 * feats.sum(1))  # raw feature, not normalised
    assert not torch.allclose(
        s, torch.sigmoid(0.05 * F.normalize(feats, dim=1).sum(1)))
    z = 20 * cos
    expected = z.clone()
    expected[:, 0] = (1 + s * 1.0) * z[:, 0]
    expected[:, 1] = z[:, 1] + s * 3.0
    expected[:, 2] = (1 - 0.5 * s) * z[:, 2]
    assert torch.allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_no_calibration_is_upstream():
    torch.manual_seed(3)
    plain, ours = upstream(), build(calibration=None)
    ours.load_state_dict(plain.state_dict())
    x = torch.randn(2, 4, 2, 2)
    assert torch.equal(ours(x)[0], plain(x)[0])
    assert ours(torch.zeros(0, 4, 2, 2))[0].shape == (0, C + 1)


def test_empty_rois():
    head = build()
    cls_score, bbox_pred = head(torch.zeros(0, 4, 2, 2))
    assert cls_score.shape == (0, C + 1) and bbox_pred.shape == (0, 4 * C)


def test_grw_loss_weighted_mean(tmp_path):
    """loss_cls = sum_i w_{y_i} CE_i / sum_i w_{y_i} over all sampled RoIs,
    foreground weights C n_c^-rho / sum n^-rho, background weight 1."""
    counts = [100, 10, 1]
    freq = tmp_path / 'freq.json'
    save_class_freq(freq, counts, classes=['a', 'b', 'c'])
    head = build(
        loss_cls=dict(
            type='GRWCrossEntropyLoss',
            class_freq=str(freq),
            rho=0.8,
            num_classes=C,
            with_background=True,
            background_weight=1.0))
    raw = [n**-0.8 for n in counts]
    weights = [C * r / sum(raw) for r in raw] + [1.0]
    torch.manual_seed(4)
    cls_score = torch.randn(6, C + 1)
    labels = torch.tensor([0, 1, 2, 3, 3, 1])
    label_weights = torch.ones(6)
    losses = head.loss(cls_score, torch.zeros(6, 4 * C), torch.zeros(6, 5),
                       labels, label_weights, torch.zeros(6, 4),
                       torch.zeros(6, 4))
    ce = F.cross_entropy(cls_score, labels, reduction='none')
    w = torch.tensor([weights[y] for y in labels.tolist()])
    expected = (w * ce).sum() / w.sum()
    assert math.isclose(
        losses['loss_cls'].item(), expected.item(), rel_tol=1e-6)


def test_predict_softmax_over_calibrated_logits():
    torch.manual_seed(5)
    head = build()
    set_calibration(head, [0.0, 0.0, 0.0], [5.0, 0.0, 0.0], [0.0] * 8, 50.)
    x = torch.randn(2, 4, 2, 2)
    cls_score, bbox_pred = head(x)
    rois = torch.tensor([[0, 1., 1., 10., 10.], [0, 2., 2., 20., 20.]])
    results = head.predict_by_feat(
        rois=(rois, ),
        cls_scores=(cls_score, ),
        bbox_preds=(bbox_pred, ),
        batch_img_metas=[dict(img_shape=(32, 32))],
        rcnn_test_cfg=None)
    scores = results[0].scores
    assert torch.allclose(scores, F.softmax(cls_score, dim=1))
    # sigma ~ 1, beta_0 = 5: class 0 gains e^5 relative to the others.
    _, raw = fc_cls_io(head, x)
    ratio = (scores[:, 0] / scores[:, 1]) / (raw[:, 0].exp() / raw[:, 1].exp())
    assert torch.allclose(ratio, torch.full((2, ), math.exp(5.)), rtol=1e-4)


def test_errors(tmp_path):
    freq = tmp_path / 'freq4.json'
    save_class_freq(freq, [4, 3, 2, 1])
    grw = dict(
        type='GRWCrossEntropyLoss', class_freq=str(freq), with_background=True)
    with pytest.raises(
            ValueError,
            match=r'DisAlignShared2FCBBoxHead predicts num_classes=3 classes '
            r'\+ 1 background column but its loss_cls GRWCrossEntropyLoss '
            r"has 4 class frequencies from the class_freq file "
            r"'.*freq4\.json' \+ 1 background column \(with_background="
            r"True\); class_freq must count the classes of this model's "
            r'training set: write its frequency file with '
            r'tools/analysis_tools/lvis_class_freq\.py'):
        build(loss_cls=grw)
    # As in the shipped configs, with num_classes in the loss config.
    with pytest.raises(
            ValueError,
            match=r'freq4\.json\) have 4 entries but '
            r'num_classes=3'):
        build(loss_cls=dict(grw, num_classes=C))
    freq3 = tmp_path / 'freq3.json'
    save_class_freq(freq3, [3, 2, 1])
    with pytest.raises(ValueError, match='with_background=True'):
        build(loss_cls=dict(type='GRWCrossEntropyLoss', class_freq=str(freq3)))
    # The head's count, with the background: accepted.
    head = build(loss_cls=dict(grw, class_freq=str(freq3)))
    assert head.loss_cls.num_classes == head.num_classes == C
    assert head.loss_cls.class_weight.numel() == C + 1
    with pytest.raises(ValueError, match=r'foreground logits.*column 3'):
        build(calibration=dict(type='DisAlignCalibration', num_classes=4))
    with pytest.raises(ValueError, match='uncalibrated_columns'):
        build(
            calibration=dict(
                type='DisAlignCalibration', uncalibrated_columns=(0, )))
    with pytest.raises(TypeError, match='config dict'):
        build(calibration='DisAlignCalibration')
    with pytest.raises(
            ValueError, match=r'in_channels=7 does not match the '
            r'box head'):
        build(calibration=dict(type='DisAlignCalibration', in_channels=7))
    with pytest.raises(KeyError, match='not registered'):
        build(calibration=dict(type='NoSuchCalibration'))
    with pytest.raises(ValueError, match='with_cls=True'):
        build(with_cls=False, calibration=dict(type='DisAlignCalibration'))


def test_other_calibrations_are_accepted():
    head = build(calibration=dict(type='LWSCalibration'))
    assert head.calibration.num_logits == C + 1
    x = torch.randn(2, 4, 2, 2)
    with torch.no_grad():
        head.calibration.alpha.fill_(1.0)
    _, z = fc_cls_io(head, x)
    out, _ = head(x)
    assert torch.allclose(out[:, :C], 2 * z[:, :C])
    assert torch.equal(out[:, C], z[:, C])


def _fake_sampling(num_imgs, num_rois, num_gts):
    from mmdet.models.task_modules.assigners import AssignResult
    from mmdet.models.task_modules.samplers import SamplingResult
    results = []
    for _ in range(num_imgs):
        priors = torch.rand(num_rois, 4) * 20
        priors[:, 2:] += priors[:, :2] + 4
        gt_bboxes = priors[:num_gts] + 0.5
        gt_inds = torch.zeros(num_rois, dtype=torch.long)
        gt_inds[:num_gts] = torch.arange(1, num_gts + 1)
        labels = torch.full((num_rois, ), -1, dtype=torch.long)
        labels[:num_gts] = torch.arange(num_gts) % C
        assign = AssignResult(num_gts, gt_inds, torch.ones(num_rois), labels)
        results.append(
            SamplingResult(
                pos_inds=torch.arange(num_gts),
                neg_inds=torch.arange(num_gts, num_rois),
                priors=priors,
                gt_bboxes=gt_bboxes,
                assign_result=assign,
                gt_flags=torch.zeros(num_rois, dtype=torch.uint8)))
    return results


STAGE_STDS = ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1,
                                     0.1], [0.033, 0.033, 0.067, 0.067])


def build_cascade(stages):
    """mmdet's 3-stage ``CascadeRoIHead`` with the box heads ``stages``."""
    assigner = dict(
        type='MaxIoUAssigner',
        pos_iou_thr=0.5,
        neg_iou_thr=0.5,
        min_pos_iou=0.5,
        ignore_iof_thr=-1)
    sampler = dict(
        type='RandomSampler',
        num=32,
        pos_fraction=0.25,
        neg_pos_ub=-1,
        add_gt_as_proposals=True)
    return MODELS.build(
        dict(
            type='CascadeRoIHead',
            num_stages=3,
            stage_loss_weights=[1, 0.5, 0.25],
            bbox_roi_extractor=dict(
                type='SingleRoIExtractor',
                roi_layer=dict(
                    type='RoIAlign', output_size=7, sampling_ratio=0),
                out_channels=8,
                featmap_strides=[4]),
            bbox_head=stages,
            train_cfg=[
                ConfigDict(
                    assigner=assigner,
                    sampler=sampler,
                    pos_weight=-1,
                    debug=False) for _ in range(3)
            ],
            test_cfg=ConfigDict(
                score_thr=0.0,
                nms=dict(type='nms', iou_threshold=0.5),
                max_per_img=20)))


def cascade_stage(head_type, stds, freq, **kwargs):
    return dict(
        type=head_type,
        in_channels=8,
        fc_out_channels=16,
        roi_feat_size=7,
        num_classes=C,
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder', target_means=[0.] * 4,
            target_stds=stds),
        reg_class_agnostic=True,
        loss_cls=dict(
            type='GRWCrossEntropyLoss',
            class_freq=str(freq),
            rho=0.8,
            num_classes=C,
            with_background=True),
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0),
        **kwargs)


def cascade_sample():
    from mmdet.structures import DetDataSample
    sample = DetDataSample(metainfo=dict(img_shape=(64, 64)))
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor([[4., 4., 30., 30.], [30., 20., 60., 50.]]),
        labels=torch.tensor([0, 2]))
    return sample


CASCADE_BOXES = torch.tensor([[5., 5., 28., 31.], [29., 21., 58., 52.],
                              [0., 0., 10., 10.], [40., 0., 60., 12.]])


def test_cascade_roi_head_with_disalign_stages(tmp_path):
    """Each cascade stage is a DisAlign head with its own calibration; the
    cascade loss and prediction run, and every stage is calibrated."""
    freq = tmp_path / 'freq.json'
    save_class_freq(freq, [50, 5, 1])
    stages = [
        cascade_stage('DisAlignShared2FCBBoxHead', stds, freq)
        for stds in STAGE_STDS
    ]
    roi_head = build_cascade(stages)
    roi_head.init_weights()
    assert len(roi_head.bbox_head) == 3
    assert all(h.calibration.num_classes == C for h in roi_head.bbox_head)
    names = [n for n, _ in roi_head.named_parameters() if 'calibration' in n]
    assert len(names) == 3 * 4
    torch.manual_seed(6)
    feats = (torch.rand(1, 8, 16, 16), )
    boxes = CASCADE_BOXES

    def proposals():
        return InstanceData(bboxes=boxes.clone(), scores=torch.ones(4))

    sample = cascade_sample()
    losses = roi_head.loss(feats, [proposals()], [sample])
    for s in range(3):
        assert torch.isfinite(losses[f's{s}.loss_cls'])
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    for h in roi_head.bbox_head:
        assert h.calibration.confidence_layer.weight.grad is not None
    results = roi_head.predict(feats, [proposals()], [sample], rescale=False)
    assert results[0].scores.numel() <= 20
    # The cascade's score average runs over calibrated logits: a large
    # margin on class 1 in every stage makes class 1 win everywhere.
    for h in roi_head.bbox_head:
        with torch.no_grad():
            h.calibration.beta.copy_(torch.tensor([0., 40., 0.]))
            h.calibration.confidence_layer.bias.fill_(50.)
    rois = bbox2roi([boxes])
    _, cls_scores, _ = roi_head._refine_roi(feats, rois, [sample.metainfo],
                                            (4, ))
    assert cls_scores[0][:, :C].argmax(1).tolist() == [1, 1, 1, 1]


# ---------------------------------------------------------------------------
# Shared4Conv1FC (GN) box heads and the fc_cls hook
# ---------------------------------------------------------------------------
GN = dict(type='GN', num_groups=2, requires_grad=True)
SMALL4 = dict(
    in_channels=4,
    roi_feat_size=2,
    conv_out_channels=8,
    fc_out_channels=8,
    num_classes=C,
    norm_cfg=GN)


def build4(type_='DisAlignShared4Conv1FCBBoxHead', **kwargs):
    head = MODELS.build(dict(SMALL4, type=type_, **kwargs))
    head.init_weights()
    return head


def test_shared4conv1fc_registered_and_checkpoint():
    assert MODELS.get('DisAlignShared4Conv1FCBBoxHead') is (
        DisAlignShared4Conv1FCBBoxHead)
    assert issubclass(DisAlignShared4Conv1FCBBoxHead, Shared4Conv1FCBBoxHead)
    assert issubclass(DisAlignShared4Conv1FCBBoxHead,
                      DisAlignConvFCBBoxHeadMixin)
    torch.manual_seed(0)
    plain, ours = build4('Shared4Conv1FCBBoxHead'), build4()
    assert len(plain.shared_convs) == 4 and len(plain.shared_fcs) == 1
    result = ours.load_state_dict(plain.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert sorted(result.missing_keys) == [
        'calibration.alpha', 'calibration.beta', 'calibration.confidence.bias',
        'calibration.confidence.weight'
    ]
    assert ours.calibration.in_channels == 8


def test_shared4conv1fc_identity_and_closed_form():
    """Identity at init against the upstream GN head with the same weights;
    then the closed form with sigma from the output of the shared FC."""
    torch.manual_seed(1)
    plain, ours = build4('Shared4Conv1FCBBoxHead'), build4()
    ours.load_state_dict(plain.state_dict(), strict=False)
    x = torch.randn(5, 4, 2, 2)
    z_ref, d_ref = plain(x)
    z, d = ours(x)
    assert torch.equal(z, z_ref) and torch.equal(d, d_ref)
    # The confidence feature: 4 convs (conv, GN, ReLU), flatten, FC, ReLU.
    h = x
    for conv in plain.shared_convs:
        h = F.relu(conv.gn(conv.conv(h)))
    feats = F.relu(plain.shared_fcs[0](h.flatten(1)))
    seen, raw = fc_cls_io(ours, x)
    assert torch.allclose(seen, feats) and torch.equal(raw, z_ref)

    alpha, beta = [0.5, -0.25, 2.0], [1.0, -2.0, 0.5]
    conf_w = [0.1 * (i - 4) for i in range(8)]
    set_calibration(ours, alpha, beta, conf_w, 0.2)
    out, _ = ours(x)
    s = torch.sigmoid(feats @ torch.tensor(conf_w) + 0.2)
    expected = raw.clone()
    for c in range(C):
        expected[:, c] = (1 + s * alpha[c]) * raw[:, c] + s * beta[c]
    assert torch.allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(out[:, C], raw[:, C])  # background unchanged


def _perturb(head, beta):
    set_calibration(head, [0.0] * C, beta, [0.0] * 8, 50.0)  # sigma ~ 1


def test_hook_survives_deepcopy_pickle_and_state_dict(tmp_path):
    """The hook is bound to its own head: a deep copy (EMA models) or a
    pickled head calibrates with its own calibration; a state_dict saved
    and loaded into a fresh head gives the same outputs."""
    torch.manual_seed(2)
    head = build4()
    _perturb(head, [1.0, 2.0, 3.0])
    x = torch.randn(3, 4, 2, 2)
    ref, _ = head(x)
    _, raw = fc_cls_io(head, x)
    assert torch.allclose(ref[:, :C], raw[:, :C] + torch.tensor([1., 2., 3.]))

    twin = copy.deepcopy(head)
    assert twin.calibration is not head.calibration
    with torch.no_grad():
        twin.calibration.beta.fill_(-5.0)
    assert torch.equal(head(x)[0], ref)  # the original is untouched
    assert torch.allclose(twin(x)[0][:, :C], raw[:, :C] - 5.0, atol=1e-5)

    buffer = io.BytesIO()
    torch.save(head, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert torch.equal(loaded(x)[0], ref)
    with torch.no_grad():
        loaded.calibration.beta.zero_()
    assert torch.allclose(loaded(x)[0], raw, atol=1e-5)
    assert torch.equal(head(x)[0], ref)

    path = tmp_path / 'head.pth'
    torch.save(head.state_dict(), path)
    fresh = build4()
    assert not torch.equal(fresh(x)[0], ref)
    fresh.load_state_dict(torch.load(path))
    assert torch.equal(fresh(x)[0], ref)
    # One hook: the logits are calibrated once, not twice.
    assert torch.allclose(
        fresh(x)[0][:, :C], raw[:, :C] + torch.tensor([1., 2., 3.]))


def test_hook_under_torch_compile():
    """torch.compile traces through the fc_cls hook in one graph."""
    torch.manual_seed(3)
    head = build4()
    _perturb(head, [1.0, -1.0, 0.5])
    x = torch.randn(4, 4, 2, 2)
    ref, ref_d = head(x)
    torch._dynamo.reset()
    compiled = torch.compile(head, backend='eager', fullgraph=True)
    out, out_d = compiled(x)
    assert torch.allclose(out, ref, atol=1e-6)
    assert torch.allclose(out_d, ref_d, atol=1e-6)
    torch._dynamo.reset()


def test_cascade_shared4conv1fc_gn_own_calibration_per_stage(tmp_path):
    """3 DisAlignShared4Conv1FCBBoxHead (GN) stages: 3 distinct
    calibrations, each calibrating its own stage; a stage-2 step (all but
    the calibrations frozen) moves every calibration and leaves every
    frozen tensor bit-identical."""
    freq = tmp_path / 'freq.json'
    save_class_freq(freq, [50, 5, 1])
    roi_head = build_cascade([
        cascade_stage(
            'DisAlignShared4Conv1FCBBoxHead',
            stds,
            freq,
            conv_out_channels=8,
            norm_cfg=dict(type='GN', num_groups=4, requires_grad=True))
        for stds in STAGE_STDS
    ])
    torch.manual_seed(7)
    roi_head.init_weights()
    heads = list(roi_head.bbox_head)
    calibrations = [h.calibration for h in heads]
    assert len({id(c) for c in calibrations}) == 3
    assert all(isinstance(c, DisAlignCalibration) for c in calibrations)
    assert all(c.num_classes == C and c.in_channels == 16
               for c in calibrations)
    # Each stage's fc_cls hook uses that stage's calibration.
    x = torch.randn(2, 8, 7, 7)
    for k, h in enumerate(heads):
        _, raw = fc_cls_io(h, x)
        with torch.no_grad():
            h.calibration.beta.fill_(10.0 * (k + 1))
            h.calibration.confidence_layer.bias.fill_(50.)
        assert torch.allclose(
            h(x)[0][:, :C], raw[:, :C] + 10.0 * (k + 1), atol=1e-4)
        with torch.no_grad():
            h.calibration.reset_calibration()
            h.calibration.alpha.uniform_(-0.5, 0.5)
            h.calibration.beta.uniform_(-0.5, 0.5)

    for name, param in roi_head.named_parameters():
        param.requires_grad_('.calibration.' in name)
    before = {k: v.clone() for k, v in roi_head.state_dict().items()}
    optimizer = torch.optim.SGD(
        [p for p in roi_head.parameters() if p.requires_grad], lr=0.1)
    feats = (torch.rand(1, 8, 16, 16), )
    proposals = InstanceData(
        bboxes=CASCADE_BOXES.clone(), scores=torch.ones(4))
    losses = roi_head.loss(feats, [proposals], [cascade_sample()])
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    optimizer.step()
    after = roi_head.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed == {
        f'bbox_head.{s}.calibration.{n}'
        for s in range(3)
        for n in ('alpha', 'beta', 'confidence.weight', 'confidence.bias')
    }


def test_error_no_classifier_layer():
    """A head whose classifier layer is not fc_cls (a user subclass that
    renamed it) cannot be calibrated: the error names the head and fix."""

    class RenamedClassifierHead(Shared2FCBBoxHead):

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.fc_logits = self.fc_cls
            del self.fc_cls

    class DisAlignRenamedHead(DisAlignConvFCBBoxHeadMixin,
                              RenamedClassifierHead):
        pass

    with pytest.raises(
            ValueError,
            match=r'DisAlignRenamedHead has no classifier layer fc_cls.*'
            r'self\.fc_cls\(x_cls\)'):
        DisAlignRenamedHead(**SMALL)
    with pytest.raises(
            ValueError,
            match=r'DisAlignShared4Conv1FCBBoxHead calibrates the class '
            r'logits and needs with_cls=True.*upstream head'):
        build4(with_cls=False)


def test_error_calibration_for_another_number_of_classes():
    """A calibration module built for other classes or another feature
    width: the error names the head and the fix (config dicts are covered
    in test_errors)."""
    wrong = DisAlignCalibration(
        num_classes=5, in_channels=8, uncalibrated_columns=(-1, ))
    with pytest.raises(
            ValueError,
            match=r'calibration of DisAlignShared4Conv1FCBBoxHead must '
            r'calibrate the 3 foreground logits.*num_classes=5.*'
            r'Build the calibration module with num_classes=3'):
        build4(calibration=wrong)
    narrow = DisAlignCalibration(
        num_classes=C, in_channels=6, uncalibrated_columns=(-1, ))
    with pytest.raises(
            ValueError,
            match=r'DisAlignShared4Conv1FCBBoxHead takes 6-d features but '
            r'fc_cls.*takes 8; build it with in_channels=8'):
        build4(calibration=narrow)
    right = DisAlignCalibration(
        num_classes=C, in_channels=8, uncalibrated_columns=(-1, ))
    assert build4(calibration=right).calibration is right


def test_error_loss_with_its_own_class_columns():
    """Seesaw asks fc_cls for num_classes + 2 columns (objectness): the
    calibration would treat the wrong column as background."""
    with pytest.raises(
            ValueError,
            match=r'DisAlignShared2FCBBoxHead: loss_cls SeesawLoss asks for '
            r'its own classifier columns \(5 instead of num_classes \+ 1 '
            r'= 4\).*GRWCrossEntropyLoss\(with_background=True\)'):
        build(loss_cls=dict(type='SeesawLoss', num_classes=C))


def test_error_sigmoid_class_frequency_loss():
    """A sigmoid loss with class frequencies (one-stage style) in a softmax
    box head."""

    class SigmoidGRW(GRWCrossEntropyLoss):
        use_sigmoid = True

    with pytest.raises(
            ValueError,
            match=r'DisAlignShared2FCBBoxHead: loss_cls SigmoidGRW is a '
            r'sigmoid loss.*Use GRWCrossEntropyLoss with '
            r'with_background=True'):
        build(
            loss_cls=dict(
                type=SigmoidGRW,
                class_freq=[3, 2, 1],
                num_classes=C,
                with_background=True))
