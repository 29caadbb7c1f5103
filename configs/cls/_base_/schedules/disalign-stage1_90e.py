# The reference stage 1 of DisAlign on ImageNet-LT (plain joint training),
# by epochs: 90 epochs, SGD lr 0.1, momentum 0.9, weight decay 5e-4 (norm
# layers included), cosine LR stepped per epoch, no warm-up; validation and
# a checkpoint every 10 epochs; mmpretrain's runtime otherwise. The lr is
# for a total batch of 256 (8 GPUs x 32; see the dataset configs).
_base_ = 'mmpretrain::_base_/default_runtime.py'

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=90, T_max=90)
]
train_cfg = dict(by_epoch=True, max_epochs=90, val_interval=10)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=2))
