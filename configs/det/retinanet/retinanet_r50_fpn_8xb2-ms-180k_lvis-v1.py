# DisAlign stage 1: RetinaNet R-50-FPN on LVIS v1 (sigmoid focal loss, no
# background column). mmdet's RetinaNet with the LVIS data of the Mask
# R-CNN configs (multi-scale training, boxes only, 0.0001 score threshold,
# 300 detections per image, no repeat-factor sampling) and their reference
# stage-1 schedule: 180k iterations of 16 images (8 GPUs x 2), steps at
# 120k and 160k, 1000 linear warm-up iterations, momentum 0.9, wd 1e-4;
# lr 0.01 as mmdet's RetinaNet (its 16-image lr) instead of 0.02. The head
# is mmdet's RetinaHead; its checkpoint loads into the stage-2 config
# without renaming.
_base_ = [
    '../_base_/models/retinanet_r50_fpn_lvis.py',
    '../_base_/datasets/lvis-v1_detection-balanced.py',
    '../_base_/schedules/disalign-stage1_180k.py'
]

model = dict(bbox_head=dict(num_classes=1203))
optim_wrapper = dict(optimizer=dict(lr=0.01))
