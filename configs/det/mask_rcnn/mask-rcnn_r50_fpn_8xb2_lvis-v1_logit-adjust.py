# Baseline post-hoc logit adjustment (Menon et al. 2021) for Mask R-CNN
# R-50-FPN on LVIS v1: the stage-1 model
# (mask-rcnn_r50_fpn_8xb2-ms-180k_lvis-v1.py) with
# zhat_j = z_j - tau log(n_j / n) for the 1203 foreground logits of the box
# head, tau 1, n_j the per-category image counts of the training
# annotations (the counts of DisAlign's GRW loss); the background logit
# (mmdet puts it last) passes unchanged; nothing trained. It is evaluated,
# not trained:
#   python tools/test.py CONFIG \
#       work_dirs/mask-rcnn_r50_fpn_8xb2-ms-180k_lvis-v1/iter_180000.pth
_base_ = './mask-rcnn_r50_fpn_8xb2-ms-180k_lvis-v1.py'

# The stage-1 checkpoint: it loads without renaming (no calibration weights)
load_from = 'work_dirs/mask-rcnn_r50_fpn_8xb2-ms-180k_lvis-v1/iter_180000.pth'
# Written by tools/analysis_tools/lvis_class_freq.py from the training file.
class_freq = 'data/lvis_v1/annotations/lvis_v1_train_class_freq.json'

model = dict(
    # All weights come from the checkpoint: no ImageNet initialisation.
    backbone=dict(init_cfg=None),
    roi_head=dict(
        bbox_head=dict(
            type='DisAlignShared2FCBBoxHead',
            calibration=dict(
                type='LogitAdjustCalibration', class_freq=class_freq,
                tau=1.0))))
