# Stage 2 (DisAlign) on ImageNet-LT, ResNeXt-50 (32x4d): the reference's
# released setting (10 epochs, lr 0.1, wd 5e-4, batch 256, cosine by epoch,
# rho 1.2, reference_cls init); see the ResNet-50 config.
_base_ = './resnet50_8xb32-10e_imagenet-lt_disalign.py'

load_from = 'work_dirs/resnext50-32x4d_8xb32-90e_imagenet-lt/epoch_90.pth'

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
