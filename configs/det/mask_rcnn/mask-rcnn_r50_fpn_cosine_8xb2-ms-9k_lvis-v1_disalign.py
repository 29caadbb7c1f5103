# DisAlign stage 2: Mask R-CNN R-50-FPN on LVIS v1, cosine box classifier.
# Cosine classifier: mmdet's NormedLinear over the C + 1 classes (background
# included), no bias, features and weights L2-normalised, scale 20. The
# reference learns the scale (init 20); NormedLinear keeps it fixed at 20
# (mmdet spells the argument `tempearture`). In stage 2 both are frozen.
# The calibration's confidence uses the raw (un-normalised) RoI feature.
_base_ = './mask-rcnn_r50_fpn_8xb2-ms-9k_lvis-v1_disalign.py'

load_from = ('work_dirs/mask-rcnn_r50_fpn_cosine_8xb2-ms-180k_lvis-v1/'
             'iter_180000.pth')

model = dict(
    roi_head=dict(
        bbox_head=dict(
            cls_predictor_cfg=dict(
                type='NormedLinear', tempearture=20, bias=False))))
