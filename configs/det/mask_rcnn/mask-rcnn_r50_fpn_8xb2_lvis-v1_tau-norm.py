# Baseline tau-normalisation (Kang et al. 2020) for Mask R-CNN R-50-FPN on
# LVIS v1: the stage-1 model (mask-rcnn_r50_fpn_8xb2-ms-180k_lvis-v1.py)
# with zhat_j = z_j / ||w_j||^tau for the 1203 foreground logits of the box
# head (w_j: row j of fc_cls), tau 1; the background logit (mmdet puts it
# last) passes unchanged; nothing trained. It is evaluated, not trained:
#   python tools/test.py CONFIG \
#       work_dirs/mask-rcnn_r50_fpn_8xb2-ms-180k_lvis-v1/iter_180000.pth
_base_ = './mask-rcnn_r50_fpn_8xb2-ms-180k_lvis-v1.py'

# The stage-1 checkpoint: it loads without renaming (no calibration weights)
load_from = 'work_dirs/mask-rcnn_r50_fpn_8xb2-ms-180k_lvis-v1/iter_180000.pth'

model = dict(
    # All weights come from the checkpoint: no ImageNet initialisation.
    backbone=dict(init_cfg=None),
    roi_head=dict(
        bbox_head=dict(
            type='DisAlignShared2FCBBoxHead',
            calibration=dict(type='TauNormCalibration', tau=1.0))))
