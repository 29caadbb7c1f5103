# The reference stage 2 of DisAlign on ADE20K, by iterations: mmseg's 160k
# schedule of stage 1 (SGD lr 0.01, momentum 0.9, weight decay 5e-4, poly
# LR with power 0.9 down to 1e-4) cut to 4000 iterations of 32 images (8
# GPUs x 4), validation and a checkpoint every 800 iterations. The stage-1
# model is frozen by DisAlignFreezeHook (it also checks that ``load_from``
# supplied every frozen tensor); only the calibration of the decode head
# is trained.
_base_ = 'mmseg::_base_/schedules/schedule_160k.py'

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0005))
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=1e-4,
        power=0.9,
        begin=0,
        end=4000,
        by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=4000, val_interval=800)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=800))
custom_hooks = [
    dict(type='DisAlignFreezeHook'),
    # Stage-2 fast path (mmdisalign.engine.hooks.stage2_fastpath_hook): frozen
    # backbone and neck under no_grad, the frozen auxiliary head skipped;
    # the same gradients for the calibration.
    dict(type='DisAlignStage2FastPathHook')
]
