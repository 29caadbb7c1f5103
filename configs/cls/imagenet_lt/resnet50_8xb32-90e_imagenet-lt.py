# Stage 1 on ImageNet-LT: joint training of ResNet-50 from scratch with the
# plain linear head (N(0, 0.01) init) and instance-balanced sampling.
# Reference schedule: 90 epochs, SGD lr 0.1 momentum 0.9, weight decay 5e-4
# (norm layers included), batch 256, cosine LR stepped per epoch, no warm-up.
_base_ = [
    'mmpretrain::_base_/models/resnet50.py',
    './_base_/imagenet-lt_bs32.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmdisalign.cls'], allow_failed_imports=False)

model = dict(head=dict(num_classes=1000, topk=(1, 5)))

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
auto_scale_lr = dict(base_batch_size=256)
