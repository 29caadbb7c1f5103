"""The stage-2 fast path gives the calibration the same gradient as the
full path, and skips only what has no gradient.

Tiny real models (mmseg EncoderDecoder with a DisAlign FCN head and an FCN
auxiliary head; mmdet Mask R-CNN with the DisAlign box head), frozen by
DisAlignFreezeHook itself; the same batch and random state through the
full path and the fast path.
"""
import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

from mmdisalign.engine.hooks import (DisAlignFreezeHook,
                                     DisAlignStage2FastPathHook,
                                     disable_stage2_fastpath,
                                     enable_stage2_fastpath)


def freeze(model, **kwargs):
    """Freeze as the Runner's DisAlignFreezeHook does; return the hook and
    a runner stub for ``before_train_iter``."""
    hook = DisAlignFreezeHook(check_stage1=False, **kwargs)
    runner = SimpleNamespace(
        model=model,
        logger=MMLogger.get_instance('test_fastpath'),
        distributed=False,
        optim_wrapper=None)
    model.train()
    hook.before_train(runner)
    return hook, runner


def calib_grads(model):
    return {
        n: p.grad.clone()
        for n, p in model.named_parameters()
        if p.requires_grad and 'calibration' in n
    }


def count_calls(module):
    """Count calls of ``module.forward`` (mmseg heads call it directly)."""
    calls = []
    forward = module.forward

    def counted(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    module.forward = counted
    return calls


def run_loss(model, data, seed):
    """One forward + backward in train mode (frozen norms in eval)."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    losses = model(**copy.deepcopy(data), mode='loss')
    total, log_vars = model.parse_losses(losses)
    total.backward()
    return {
        k: float(v.detach())
        for k, v in log_vars.items()
    }, calib_grads(model)


# ---------------------------------------------------------------------------
# a plain model: extract_feat under no_grad, and when it is not applied
# ---------------------------------------------------------------------------
class Toy(nn.Module):

    def __init__(self):
        super().__init__()
        from mmdisalign.models.calibration import DisAlignCalibration
        self.backbone = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
        self.fc = nn.Linear(3, 2)
        self.calibration = DisAlignCalibration(2, 3)

    def extract_feat(self, x):
        return self.backbone(x)

    def forward(self, x):
        f = self.extract_feat(x)
        return self.calibration(self.fc(f), f)


def test_extract_feat_no_grad_only_when_frozen():
    torch.manual_seed(0)
    model = Toy()
    x = torch.randn(5, 4, requires_grad=True)
    # nothing frozen: nothing applied
    report = enable_stage2_fastpath(model)
    assert report.applied == []
    assert report.skipped == [
        'extract_feat: 4 trainable backbone/neck tensors (e.g. '
        'backbone.0.weight)'
    ]
    assert model.extract_feat(x).requires_grad
    freeze(model)
    ref = model(x)
    ref.sum().backward()
    ref_grads = calib_grads(model)
    assert x.grad is not None  # the graph went through the backbone
    x.grad = None
    model.zero_grad()
    report = enable_stage2_fastpath(model)
    assert report.applied == [
        'extract_feat (frozen backbone/neck) under torch.no_grad()'
    ]
    feats = model.extract_feat(x)
    assert not feats.requires_grad and feats.grad_fn is None
    out = model(x)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    out.sum().backward()
    assert x.grad is None  # no graph through the frozen backbone
    for name, grad in calib_grads(model).items():
        torch.testing.assert_close(grad, ref_grads[name], rtol=0, atol=0)
    disable_stage2_fastpath(model)
    assert 'extract_feat' not in model.__dict__
    assert model.extract_feat(x).requires_grad


# ---------------------------------------------------------------------------
# mmseg: the frozen auxiliary head is skipped
# ---------------------------------------------------------------------------
def seg_model():
    from mmseg.registry import MODELS

    import mmdisalign.seg  # noqa: F401
    init_default_scope('mmseg')
    norm = dict(type='BN', requires_grad=True)
    cfg = dict(
        type='EncoderDecoder',
        data_preprocessor=dict(
            type='SegDataPreProcessor',
            mean=[120.] * 3,
            std=[50.] * 3,
            size=(32, 32),
            pad_val=0,
            seg_pad_val=255),
        backbone=dict(
            type='ResNetV1c',
            depth=18,
            num_stages=2,
            out_indices=(0, 1),
            strides=(1, 2),
            dilations=(1, 1),
            stem_channels=8,
            base_channels=8,
            norm_cfg=norm),
        decode_head=dict(
            type='DisAlignFCNHead',
            in_channels=16,
            in_index=1,
            channels=8,
            num_convs=1,
            num_classes=4,
            dropout_ratio=0.1,
            norm_cfg=norm,
            confidence='reference',
            loss_decode=dict(
                type='GRWCrossEntropyLoss',
                class_freq=[0.5, 0.3, 0.15, 0.05],
                rho=0.2,
                num_classes=4,
                avg_mode='pixel')),
        # a NONZERO weight: it still carries no gradient when frozen
        auxiliary_head=dict(
            type='FCNHead',
            in_channels=8,
            in_index=0,
            channels=4,
            num_convs=1,
            num_classes=4,
            dropout_ratio=0.1,
            norm_cfg=norm,
            loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4)),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    with torch.no_grad():  # a calibration away from the identity
        model.decode_head.calibration.alpha.uniform_(-0.5, 0.5)
        model.decode_head.calibration.beta.uniform_(-0.5, 0.5)
    return model


def seg_batch():
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(1)
    samples = []
    for _ in range(2):
        s = SegDataSample(
            metainfo=dict(
                img_shape=(32, 32), ori_shape=(32, 32), pad_shape=(32, 32)))
        s.gt_sem_seg = PixelData(
            data=torch.randint(0, 4, (1, 32, 32), generator=g))
        samples.append(s)
    return dict(
        inputs=list(
            torch.randint(
                0, 256, (2, 3, 32, 32), generator=g, dtype=torch.uint8)),
        data_samples=samples)


def test_seg_fast_path_same_gradient_without_aux_head():
    model = seg_model()
    hook, runner = freeze(model)
    aux_calls = count_calls(model.auxiliary_head)
    data = model.data_preprocessor(seg_batch(), True)
    full_log, full_grads = run_loss(model, data, seed=7)
    assert len(aux_calls) == 1
    assert full_log['aux.loss_ce'] > 0
    report = enable_stage2_fastpath(model)
    assert 'frozen auxiliary head(s): forward and loss skipped' in \
        report.applied
    assert 'loss' in model.auxiliary_head.__dict__
    model.train()
    hook.before_train_iter(runner, 1)
    fast_log, fast_grads = run_loss(model, data, seed=7)
    assert len(aux_calls) == 1  # not run again
    assert not any(k.startswith('aux.') for k in fast_log)
    for key in ('decode.loss_grw', 'decode.acc_seg'):
        assert fast_log[key] == full_log[key]
    # the logged total now counts only the terms with a gradient
    assert fast_log['loss'] == pytest.approx(full_log['loss'] -
                                             full_log['aux.loss_ce'])
    assert sorted(fast_grads) == sorted(full_grads) == [
        'decode_head.calibration.alpha', 'decode_head.calibration.beta',
        'decode_head.calibration.confidence.bn.bias',
        'decode_head.calibration.confidence.bn.weight',
        'decode_head.calibration.confidence.conv.weight'
    ]
    for name, grad in full_grads.items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(fast_grads[name], grad, rtol=0, atol=0)
    disable_stage2_fastpath(model)
    assert '_auxiliary_head_forward_train' not in model.__dict__
    assert 'loss' not in model.auxiliary_head.__dict__


def test_seg_trainable_aux_head_is_kept():
    model = seg_model()
    freeze(model, trainable=[r'auxiliary_head\.conv_seg'])
    report = enable_stage2_fastpath(model)
    assert any('auxiliary head: 2 trainable' in s for s in report.skipped)
    assert '_auxiliary_head_forward_train' not in model.__dict__
    assert 'loss' not in model.auxiliary_head.__dict__


# ---------------------------------------------------------------------------
# mmdet: the frozen mask branch (and, opt-in, the RPN loss) is skipped
# ---------------------------------------------------------------------------
def det_model(head='DisAlignShared2FCBBoxHead'):
    import os.path as osp

    import mmdet
    from mmdet.registry import MODELS
    from mmengine.config import Config

    import mmdisalign.det  # noqa: F401
    init_default_scope('mmdet')
    base = osp.join(
        osp.dirname(mmdet.__file__), '.mim', 'configs', '_base_', 'models',
        'mask-rcnn_r50_fpn.py')
    cfg = Config.fromfile(base).model
    cfg.backbone.update(depth=18, base_channels=4, init_cfg=None)
    cfg.neck.update(in_channels=[4, 8, 16, 32], out_channels=8)
    cfg.rpn_head.update(in_channels=8, feat_channels=8)
    cfg.roi_head.bbox_roi_extractor.out_channels = 8
    cfg.roi_head.mask_roi_extractor.out_channels = 8
    cfg.roi_head.bbox_head.update(
        type=head, in_channels=8, fc_out_channels=16, num_classes=3)
    if head == 'DisAlignShared4Conv1FCBBoxHead':
        cfg.roi_head.bbox_head.update(
            conv_out_channels=8,
            norm_cfg=dict(type='GN', num_groups=2, requires_grad=True))
    cfg.roi_head.bbox_head.loss_cls = dict(
        type='GRWCrossEntropyLoss',
        class_freq=[50, 10, 2],
        rho=0.8,
        num_classes=3,
        with_background=True)
    cfg.roi_head.mask_head.update(
        in_channels=8, conv_out_channels=8, num_classes=3)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    with torch.no_grad():
        calib = model.roi_head.bbox_head.calibration
        calib.alpha.uniform_(-0.5, 0.5)
        calib.beta.uniform_(-0.5, 0.5)
    return model


def det_batch():
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    g = torch.Generator().manual_seed(2)
    samples = []
    for _ in range(2):
        boxes = torch.tensor([[4., 6., 30., 40.], [20., 10., 60., 50.],
                              [2., 30., 24., 62.]])
        masks = np.zeros((3, 64, 64), dtype=np.uint8)
        for j, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
            masks[j, y1:y2, x1:x2] = 1
        s = DetDataSample(
            metainfo=dict(
                img_shape=(64, 64), ori_shape=(64, 64), scale_factor=(1., 1.)))
        s.gt_instances = InstanceData(
            bboxes=boxes,
            labels=torch.tensor([0, 1, 2]),
            masks=BitmapMasks(masks, 64, 64))
        samples.append(s)
    return dict(
        inputs=list(
            torch.randint(
                0, 256, (2, 3, 64, 64), generator=g, dtype=torch.uint8)),
        data_samples=samples)


@pytest.mark.parametrize(
    'head', ['DisAlignShared2FCBBoxHead', 'DisAlignShared4Conv1FCBBoxHead'])
def test_det_fast_path_same_gradient_without_mask_branch(head):
    model = det_model(head)
    hook, runner = freeze(model)
    mask_calls = count_calls(model.roi_head.mask_head)
    data = model.data_preprocessor(det_batch(), True)
    full_log, full_grads = run_loss(model, data, seed=11)
    assert len(mask_calls) == 1 and full_log['loss_mask'] > 0
    report = enable_stage2_fastpath(model)
    assert report.applied == [
        'extract_feat (frozen backbone/neck) under torch.no_grad()',
        'frozen mask branch: mask forward, targets and loss skipped'
    ]
    model.train()
    hook.before_train_iter(runner, 1)
    fast_log, fast_grads = run_loss(model, data, seed=11)
    assert len(mask_calls) == 1
    assert 'loss_mask' not in fast_log
    for key in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox',
                'acc'):
        assert fast_log[key] == full_log[key], key
    assert len(full_grads) == 4  # alpha, beta, confidence weight and bias
    for name, grad in full_grads.items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(fast_grads[name], grad, rtol=0, atol=0)


def test_det_skip_rpn_loss_keeps_the_proposals():
    model = det_model()
    freeze(model)
    data = model.data_preprocessor(det_batch(), True)
    with torch.no_grad():
        x = model.extract_feat(data['inputs'])
    cfg = model.train_cfg.rpn_proposal
    samples = data['data_samples']
    torch.manual_seed(3)
    losses, ref = model.rpn_head.loss_and_predict(
        x, copy.deepcopy(samples), proposal_cfg=cfg)
    assert losses['loss_rpn_cls'][0] > 0
    report = enable_stage2_fastpath(model, skip_rpn_loss=True)
    assert report.applied[-1].startswith('frozen RPN: losses skipped')
    losses, fast = model.rpn_head.loss_and_predict(
        x, copy.deepcopy(samples), proposal_cfg=cfg)
    assert losses == {}
    for a, b in zip(ref, fast):
        torch.testing.assert_close(b.bboxes, a.bboxes, rtol=0, atol=0)
        torch.testing.assert_close(b.scores, a.scores, rtol=0, atol=0)
    # the default leaves the RPN alone
    assert 'loss_and_predict' not in enable_stage2_fastpath(model).summary()


def test_hook_applies_after_freezing_and_removes_after_training():
    model = det_model()
    freeze(model)
    runner = SimpleNamespace(
        model=model, logger=MMLogger.get_instance('test_fastpath'))
    hook = DisAlignStage2FastPathHook()
    assert hook.priority == 'BELOW_NORMAL'
    hook.before_train(runner)
    assert 'mask_loss' in model.roi_head.__dict__
    assert 'extract_feat' in model.__dict__
    hook.after_train(runner)
    assert 'mask_loss' not in model.roi_head.__dict__
    assert 'extract_feat' not in model.__dict__
