# Stage 1 on ImageNet-LT, ResNeXt-50 (32x4d) with a cosine classifier
# (CosineClsHead, learnable scale initialised to 16).
_base_ = './resnext50-32x4d_8xb32-90e_imagenet-lt.py'

model = dict(
    head=dict(type='CosineClsHead', num_classes=1000, in_channels=2048))
