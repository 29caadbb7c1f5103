# Stage 1 on ImageNet-LT: joint training of ResNet-50 from scratch with the
# plain linear head (N(0, 0.01) init) and instance-balanced sampling.
# Reference schedule (../_base_/schedules/disalign-stage1_90e.py): 90
# epochs, SGD lr 0.1 momentum 0.9, weight decay 5e-4 (norm layers
# included), batch 256, cosine LR stepped per epoch, no warm-up.
_base_ = [
    'mmpretrain::_base_/models/resnet50.py',
    '../_base_/datasets/imagenet-lt_bs32.py',
    '../_base_/schedules/disalign-stage1_90e.py',
]
custom_imports = dict(imports=['mmdisalign.cls'], allow_failed_imports=False)

model = dict(head=dict(num_classes=1000, topk=(1, 5)))
