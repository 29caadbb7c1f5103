# DisAlign stage 1: Mask R-CNN R-101-FPN on LVIS v1, linear box classifier.
_base_ = './mask-rcnn_r50_fpn_8xb2-ms-180k_lvis-v1.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet101')))
