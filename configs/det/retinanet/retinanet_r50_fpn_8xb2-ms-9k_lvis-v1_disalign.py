# DisAlign stage 2: RetinaNet R-50-FPN on LVIS v1. The stage-1 model
# (retinanet_r50_fpn_8xb2-ms-180k_lvis-v1.py) frozen but for the calibration
# of the classification conv (per anchor and location), trained with the
# GRW focal loss (rho 0.8) on the per-category IMAGE counts of the LVIS v1
# training annotations (../_base_/models/retinanet_r50_fpn_lvis_disalign.py).
# The LVIS stage-2 recipe of the Mask R-CNN configs: 9000 iterations of 16
# images (8 GPUs x 2), lr 0.02, step at 8000, 1000 warm-up iterations,
# wd 1e-4, no repeat-factor sampling
# (../_base_/schedules/disalign-stage2_9k.py).
_base_ = [
    '../_base_/models/retinanet_r50_fpn_lvis_disalign.py',
    '../_base_/datasets/lvis-v1_detection-balanced.py',
    '../_base_/schedules/disalign-stage2_9k.py'
]

# The stage-1 checkpoint (what tools/train.py writes for the stage-1 config).
load_from = 'work_dirs/retinanet_r50_fpn_8xb2-ms-180k_lvis-v1/iter_180000.pth'
# Written by tools/analysis_tools/lvis_class_freq.py from the training file.
class_freq = 'data/lvis_v1/annotations/lvis_v1_train_class_freq.json'

model = dict(
    bbox_head=dict(
        num_classes=1203,
        loss_cls=dict(class_freq=class_freq, num_classes=1203)))
