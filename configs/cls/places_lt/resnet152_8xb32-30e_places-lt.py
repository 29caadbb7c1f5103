# Stage 1 on Places-LT (365 classes, 62.5K training images): ResNet-152
# fine-tuned from ImageNet-pretrained weights, as in the paper (and OLTR).
# Nothing is downloaded: put an mmpretrain ImageNet ResNet-152 checkpoint
# (keys ``backbone.*``; its 1000-class ``head.fc`` is skipped with a
# shape-mismatch warning) at the ``load_from`` path below, or override it:
#   python tools/train.py CONFIG --cfg-options load_from=/path/to/r152.pth
# The reference released no Places-LT config; we chose a fine-tuning
# schedule of 30 epochs, SGD lr 0.01 (a tenth of the from-scratch lr, as
# the backbone is pretrained) momentum 0.9, wd 5e-4, batch 256, cosine LR
# per epoch, and the ImageNet-LT augmentation
# (../_base_/datasets/places-lt_bs32.py: layout, class-frequency file).
_base_ = [
    'mmpretrain::_base_/models/resnet152.py',
    '../_base_/datasets/places-lt_bs32.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmdisalign.cls'], allow_failed_imports=False)

load_from = 'checkpoints/resnet152_imagenet.pth'

model = dict(head=dict(num_classes=365, topk=(1, 5)))

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=30, T_max=30)
]
train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=5)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=2))
