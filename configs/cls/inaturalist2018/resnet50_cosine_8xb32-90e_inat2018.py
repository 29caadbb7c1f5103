# Stage 1 on iNaturalist 2018 with a cosine classifier (the paper's starred
# rows): bias-free, L2-normalised features and class weights, learnable
# scale (CosineClsHead's default initial value 16, as for ImageNet-LT; the
# reference released no iNaturalist config). Same schedule and data as the
# linear head.
_base_ = './resnet50_8xb32-90e_inat2018.py'

model = dict(head=dict(type='CosineClsHead', in_channels=2048))
