# Stage 1 on Fashion-MNIST-LT: joint training of a small CIFAR-style
# ResNet-18 (../_base_/models/resnet18-s3w16_fashion-mnist.py: 3 stages, 16
# base channels, 64-d feature; about 0.3M parameters) with the plain linear
# head, instance-balanced sampling.
_base_ = [
    '../_base_/models/resnet18-s3w16_fashion-mnist.py',
    '../_base_/datasets/fashion-mnist-lt_bs128.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmdisalign.cls'], allow_failed_imports=False)

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=30, T_max=29),
]
train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=30)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=30, max_keep_ckpts=1))
randomness = dict(seed=0, deterministic=False)
