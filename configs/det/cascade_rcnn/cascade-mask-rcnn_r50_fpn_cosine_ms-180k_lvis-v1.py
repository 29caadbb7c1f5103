# DisAlign stage 1: Cascade Mask R-CNN R-50-FPN on LVIS v1, cosine box
# classifiers in the three stages (the paper's Table 9 setting).
# Cosine classifier: mmdet's NormedLinear over the C + 1 classes (background
# included), no bias, features and weights L2-normalised, scale 20. The
# reference learns the scale (init 20); NormedLinear keeps it fixed at 20
# (mmdet spells the argument `tempearture`).
_base_ = './cascade-mask-rcnn_r50_fpn_ms-180k_lvis-v1.py'

num_classes = 1203
model = dict(
    roi_head=dict(bbox_head=[
        dict(
            type='Shared2FCBBoxHead',
            in_channels=256,
            fc_out_channels=1024,
            roi_feat_size=7,
            num_classes=num_classes,
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder',
                target_means=[0., 0., 0., 0.],
                target_stds=stds),
            reg_class_agnostic=True,
            cls_predictor_cfg=dict(
                type='NormedLinear', tempearture=20, bias=False),
            loss_cls=dict(
                type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))
        for stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1],
                     [0.033, 0.033, 0.067, 0.067])
    ]))
