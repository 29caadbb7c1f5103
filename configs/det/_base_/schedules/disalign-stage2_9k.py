# The reference stage 2 of DisAlign on LVIS v1: 9000 iterations, step at
# 8000, validation and checkpoint every 3000; lr 0.02, 1000 warm-up
# iterations, momentum 0.9, weight decay 1e-4 (also on the calibration),
# 16 images per batch: the stage-1 schedule (disalign-stage1_180k.py)
# otherwise.
_base_ = './disalign-stage1_180k.py'

train_cfg = dict(max_iters=9000, val_interval=3000)
param_scheduler = [
    _base_.param_scheduler[0],
    dict(_base_.param_scheduler[1], end=9000, milestones=[8000])
]
default_hooks = dict(checkpoint=dict(interval=3000))

# Stage 1's hooks, then:
custom_hooks = _base_.custom_hooks + [
    # Freezes all but the calibration after `load_from` and checks that the
    # checkpoint supplied every frozen tensor.
    dict(type='DisAlignFreezeHook'),
    # Stage-2 fast path (mmdisalign.engine.hooks.stage2_fastpath_hook):
    # frozen backbone and neck under no_grad, the frozen mask branch
    # skipped; the same gradients for the calibration.
    dict(type='DisAlignStage2FastPathHook')
]
