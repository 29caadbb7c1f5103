# Stage 1 on ImageNet-LT, ResNeXt-50 (32x4d): the reference's released
# setting. Same data and schedule as the ResNet-50 config; the backbone is
# that of mmpretrain's _base_/models/resnext50_32x4d.py.
_base_ = './resnet50_8xb32-90e_imagenet-lt.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNeXt',
        depth=50,
        num_stages=4,
        out_indices=(3, ),
        groups=32,
        width_per_group=4,
        style='pytorch'))
