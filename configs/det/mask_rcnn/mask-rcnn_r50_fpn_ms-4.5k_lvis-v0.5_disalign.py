# DisAlign stage 2: Mask R-CNN R-50-FPN on LVIS v0.5, linear box classifier.
# Everything learned in stage 1 is frozen (backbone, neck, RPN, box FCs,
# classifier, box regressor and the whole mask head, norm statistics
# included); only the calibration of the box head is trained: the C
# foreground logits become sigma * (alpha' z + beta) + (1 - sigma) z
# (DisAlignCalibration, identity at init), the background logit is unchanged.
# Loss: GRW cross-entropy, rho 0.8, foreground weights from the per-category
# IMAGE counts of the LVIS v0.5 training annotations, background weight 1,
# weighted mean over all sampled RoIs. Reference schedule: 4500 iterations
# of 16 images (8 GPUs x 2), lr 0.02, step at 4000, 1000 warm-up iterations,
# wd 1e-4, no repeat-factor sampling.
_base_ = './mask-rcnn_r50_fpn_ms-90k_lvis-v0.5.py'

# The stage-1 checkpoint (what tools/train.py writes for the stage-1 config).
load_from = 'work_dirs/mask-rcnn_r50_fpn_ms-90k_lvis-v0.5/iter_90000.pth'
# Written by tools/analysis_tools/lvis_class_freq.py from the training file.
class_freq = 'data/lvis_v0.5/annotations/lvis_v0.5_train_class_freq.json'

model = dict(
    # All weights come from `load_from`: no ImageNet initialisation.
    backbone=dict(init_cfg=None),
    roi_head=dict(
        bbox_head=dict(
            type='DisAlignShared2FCBBoxHead',
            calibration=dict(type='DisAlignCalibration', init_mode='identity'),
            loss_cls=dict(
                _delete_=True,
                type='GRWCrossEntropyLoss',
                class_freq=class_freq,
                rho=0.8,
                num_classes=1230,
                with_background=True,
                background_weight=1.0,
                avg_mode='weighted',
                loss_weight=1.0))))

train_cfg = dict(max_iters=4500, val_interval=1500)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=1000),
    dict(
        type='MultiStepLR',
        begin=0,
        end=4500,
        by_epoch=False,
        milestones=[4000],
        gamma=0.1)
]
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001))
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=1500))

custom_hooks = [
    dict(type='DisAlignCategoryCheckHook'),
    # Freezes all but the calibration after `load_from` and checks that the
    # checkpoint supplied every frozen tensor.
    dict(type='DisAlignFreezeHook'),
    # Stage-2 fast path (mmdisalign.engine.stage2_fastpath): frozen backbone
    # and neck under no_grad, the frozen mask branch skipped; the same
    # gradients for the calibration.
    dict(type='DisAlignStage2FastPathHook')
]
