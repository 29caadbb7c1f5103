"""docs/custom_heads.md, section det-one-stage: the few lines that give a
dense head of mmdet (here GFLHead) DisAlign: build, loss, identity at init
against the upstream head with the same weights, checkpoint names."""
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import mmdisalign.det  # noqa: F401

GFL = dict(
    type='GFLHead',
    num_classes=4,
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
    loss_cls=dict(
        type='QualityFocalLoss', use_sigmoid=True, beta=2.0, loss_weight=1.0),
    loss_dfl=dict(type='DistributionFocalLoss', loss_weight=0.25),
    reg_max=4,
    loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
    train_cfg=dict(
        assigner=dict(type='ATSSAssigner', topk=9),
        allowed_border=-1,
        pos_weight=-1,
        debug=False),
    test_cfg=dict(
        nms_pre=100,
        min_bbox_size=0,
        score_thr=0.05,
        nms=dict(type='nms', iou_threshold=0.6),
        max_per_img=20))


@pytest.fixture
def heads(exec_doc_snippet):
    namespace = exec_doc_snippet('custom_heads.md', 'det-one-stage-gfl')
    init_default_scope('mmdet')
    torch.manual_seed(0)
    ref = MODELS.build(ConfigDict(GFL))
    ref.init_weights()
    head = MODELS.build(ConfigDict(GFL, type='DisAlignGFLHead'))
    assert type(head) is namespace['DisAlignGFLHead']
    head.init_weights()
    result = head.load_state_dict(ref.state_dict(), strict=False)
    return ref, head, result


def feats():
    g = torch.Generator().manual_seed(0)
    return [
        torch.randn(2, 8, 8, 8, generator=g),
        torch.randn(2, 8, 4, 4, generator=g)
    ]


def samples():
    out = []
    for i in range(2):
        sample = DetDataSample(
            metainfo=dict(img_shape=(64, 64), pad_shape=(64, 64)))
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor([[4., 4., 30., 36.], [20., 10., 60., 50.]]),
            labels=torch.tensor([i, 3]))
        out.append(sample)
    return out


def test_checkpoint_names_and_identity_at_init(heads):
    ref, head, result = heads
    assert result.unexpected_keys == []
    assert sorted(result.missing_keys) == [
        'calibration.alpha', 'calibration.beta', 'calibration.confidence.bias',
        'calibration.confidence.weight'
    ]
    assert head.calibration.in_channels == head.gfl_cls.in_channels
    ref.eval()
    head.eval()
    with torch.no_grad():
        for a, b in zip(ref(feats()), head(feats())):
            for x, y in zip(a, b):
                torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_loss_trains_the_calibration(heads):
    _, head, _ = heads
    with torch.no_grad():
        head.calibration.alpha.uniform_(-0.5, 0.5)
        head.calibration.beta.uniform_(-0.5, 0.5)
    # stage 2: the head was loaded from stage-1 weights, so everything but
    # the calibration is frozen (without that the calibration refuses to
    # train: DisAlignFreezeHook missing)
    for name, param in head.named_parameters():
        param.requires_grad_(name.startswith('calibration.'))
    losses = head.loss(feats(), samples())
    total = sum(sum(v) if isinstance(v, list) else v for v in losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert head.calibration.alpha.grad.abs().sum() > 0
    assert head.calibration.beta.grad.abs().sum() > 0
