# DisAlign stage 1: Mask R-CNN R-50-FPN on LVIS v1, linear box classifier.
# The upstream mmdet LVIS recipe (multi-scale training, 0.0001 score
# threshold, 300 detections per image) with the reference stage 1 of
# DisAlign: instance-balanced sampling (no repeat-factor sampling) and
# 180k iterations of 16 images (8 GPUs x 2), lr 0.02, steps at 120k and 160k,
# 1000 linear warm-up iterations. The box head is mmdet's Shared2FCBBoxHead;
# its checkpoint loads into the stage-2 config without renaming.
_base_ = [
    '../_base_/models/mask-rcnn_r50_fpn_lvis.py',
    '../_base_/datasets/lvis-v1_instance-balanced.py',
    '../_base_/schedules/disalign-stage1_180k.py'
]

model = dict(
    roi_head=dict(
        bbox_head=dict(num_classes=1203), mask_head=dict(num_classes=1203)))
