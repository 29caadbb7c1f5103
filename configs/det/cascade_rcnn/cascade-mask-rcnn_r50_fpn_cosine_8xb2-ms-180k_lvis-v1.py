# DisAlign stage 1: Cascade Mask R-CNN R-50-FPN on LVIS v1, cosine box
# classifiers in the three stages (the paper's Table 9 setting).
# Cosine classifier: mmdet's NormedLinear over the C + 1 classes (background
# included), no bias, features and weights L2-normalised, scale 20. The
# reference learns the scale (init 20); NormedLinear keeps it fixed at 20
# (mmdet spells the argument `tempearture`).
_base_ = './cascade-mask-rcnn_r50_fpn_8xb2-ms-180k_lvis-v1.py'

model = dict(
    roi_head=dict(bbox_head=[
        dict(
            head,
            cls_predictor_cfg=dict(
                type='NormedLinear', tempearture=20, bias=False))
        for head in _base_.model.roi_head.bbox_head
    ]))
