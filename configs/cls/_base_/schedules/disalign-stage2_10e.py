# The reference stage 2 of DisAlign on ImageNet-LT, by epochs: the stage-1
# model frozen by DisAlignFreezeHook (backbone, neck, the classifier, norm
# statistics included; it also checks that ``load_from`` supplied every
# frozen tensor), only the calibration of the head trained; 10 epochs, SGD
# lr 0.1, momentum 0.9, weight decay 5e-4 (calibration included), cosine LR
# stepped per epoch, no warm-up; validation and a checkpoint every 2
# epochs; mmpretrain's runtime otherwise. The configs set the head, its
# loss and ``load_from``.
_base_ = 'mmpretrain::_base_/default_runtime.py'

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=10, T_max=10)
]
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=2)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=2, max_keep_ckpts=2))
custom_hooks = [dict(type='DisAlignFreezeHook')]
