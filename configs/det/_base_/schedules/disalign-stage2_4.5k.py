# The reference stage 2 of DisAlign on LVIS v0.5: 4500 iterations, step at
# 4000, validation and checkpoint every 1500; otherwise as on LVIS v1
# (disalign-stage2_9k.py).
_base_ = './disalign-stage2_9k.py'

train_cfg = dict(max_iters=4500, val_interval=1500)
param_scheduler = [
    _base_.param_scheduler[0],
    dict(_base_.param_scheduler[1], end=4500, milestones=[4000])
]
default_hooks = dict(checkpoint=dict(interval=1500))
