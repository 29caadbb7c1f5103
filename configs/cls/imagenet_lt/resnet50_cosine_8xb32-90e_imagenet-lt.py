# Stage 1 on ImageNet-LT with a cosine classifier (the paper's starred
# rows): bias-free, L2-normalised features and class weights, learnable
# scale (CosineClsHead's default initial value 16; the reference released
# no classification cosine config). Same schedule as the linear head.
_base_ = './resnet50_8xb32-90e_imagenet-lt.py'

model = dict(
    head=dict(type='CosineClsHead', num_classes=1000, in_channels=2048))
