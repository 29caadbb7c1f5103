# The reference stage 1 of DisAlign on LVIS v0.5: 90k iterations, steps at
# 60k and 80k; otherwise as on LVIS v1 (disalign-stage1_180k.py).
_base_ = './disalign-stage1_180k.py'

train_cfg = dict(max_iters=90000, val_interval=90000)
param_scheduler = [
    _base_.param_scheduler[0],
    dict(_base_.param_scheduler[1], end=90000, milestones=[60000, 80000])
]
default_hooks = dict(checkpoint=dict(interval=10000))
