# DisAlign stage 2: Cascade Mask R-CNN R-50-FPN on LVIS v1, linear box
# classifiers. Each of the three box heads gets its own calibration (only
# the C foreground logits; the background logit is unchanged) and its own
# GRW loss (rho 0.8, per-category IMAGE counts of the LVIS v1 training
# annotations, background weight 1), weighted by the cascade's stage loss
# weights (1, 0.5, 0.25). Everything else is frozen, the mask heads
# included. Schedule as for Mask R-CNN on LVIS v1: 9000 iterations of 16
# images, lr 0.02, step at 8000, 1000 warm-up iterations, wd 1e-4, no
# repeat-factor sampling.
_base_ = './cascade-mask-rcnn_r50_fpn_ms-180k_lvis-v1.py'

load_from = ('work_dirs/cascade-mask-rcnn_r50_fpn_ms-180k_lvis-v1/'
             'iter_180000.pth')
class_freq = 'data/lvis_v1/annotations/lvis_v1_train_class_freq.json'

num_classes = 1203
model = dict(
    backbone=dict(init_cfg=None),
    roi_head=dict(bbox_head=[
        dict(
            type='DisAlignShared2FCBBoxHead',
            in_channels=256,
            fc_out_channels=1024,
            roi_feat_size=7,
            num_classes=num_classes,
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder',
                target_means=[0., 0., 0., 0.],
                target_stds=stds),
            reg_class_agnostic=True,
            calibration=dict(type='DisAlignCalibration', init_mode='identity'),
            loss_cls=dict(
                type='GRWCrossEntropyLoss',
                class_freq=class_freq,
                rho=0.8,
                num_classes=num_classes,
                with_background=True,
                background_weight=1.0,
                avg_mode='weighted',
                loss_weight=1.0),
            loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))
        for stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1],
                     [0.033, 0.033, 0.067, 0.067])
    ]))

train_cfg = dict(max_iters=9000, val_interval=3000)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=1000),
    dict(
        type='MultiStepLR',
        begin=0,
        end=9000,
        by_epoch=False,
        milestones=[8000],
        gamma=0.1)
]
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001))
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=3000))

custom_hooks = [
    dict(type='DisAlignCategoryCheckHook'),
    dict(type='DisAlignFreezeHook'),
    # Stage-2 fast path (mmdisalign.engine.stage2_fastpath): frozen backbone
    # and neck under no_grad, the frozen mask branch skipped; the same
    # gradients for the calibration.
    dict(type='DisAlignStage2FastPathHook')
]
