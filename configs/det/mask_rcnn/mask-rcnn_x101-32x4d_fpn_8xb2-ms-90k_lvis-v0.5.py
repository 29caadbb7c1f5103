# DisAlign stage 1: Mask R-CNN ResNeXt-101 32x4d-FPN on LVIS v0.5, linear box
# classifier.
_base_ = './mask-rcnn_r50_fpn_8xb2-ms-90k_lvis-v0.5.py'

model = dict(
    backbone=dict(
        type='ResNeXt',
        depth=101,
        groups=32,
        base_width=4,
        init_cfg=dict(
            type='Pretrained', checkpoint='open-mmlab://resnext101_32x4d')))
