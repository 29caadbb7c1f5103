# Stage 1 on iNaturalist 2018 (8142 classes, 437.5K training images):
# ResNet-50 from scratch, linear head, instance-balanced sampling.
# The reference released no iNaturalist config; we chose the ImageNet-LT
# stage-1 recipe (../_base_/schedules/disalign-stage1_90e.py: 90 epochs as
# in the paper's iNaturalist row, SGD lr 0.1 momentum 0.9, wd 5e-4, batch
# 256, cosine LR per epoch) and its augmentation so that the only change
# between datasets is the data: this config is the ImageNet-LT one
# (../imagenet_lt/resnet50_8xb32-90e_imagenet-lt.py) with the iNaturalist
# data (../_base_/datasets/inat2018_bs32.py: layout, class-frequency file).
_base_ = [
    'mmpretrain::_base_/models/resnet50.py',
    '../_base_/datasets/inat2018_bs32.py',
    '../_base_/schedules/disalign-stage1_90e.py',
]
custom_imports = dict(imports=['mmdisalign.cls'], allow_failed_imports=False)

model = dict(head=dict(num_classes=8142, topk=(1, 5)))
