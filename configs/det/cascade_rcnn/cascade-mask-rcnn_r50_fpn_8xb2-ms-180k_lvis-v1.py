# DisAlign stage 1: Cascade Mask R-CNN R-50-FPN on LVIS v1, linear box
# classifiers. mmdet's Cascade Mask R-CNN with the LVIS v1 data and test
# settings of mmdet's LVIS recipe, and the reference stage-1 recipe of
# DisAlign (as for Mask R-CNN): instance-balanced sampling (no repeat-factor
# sampling), 180k iterations of 16 images (8 GPUs x 2), lr 0.02, steps at
# 120k and 160k, 1000 linear warm-up iterations. The reference released no
# Cascade configs; this one follows the paper's Table 9 setting.
_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    '../_base_/datasets/lvis-v1_instance-balanced.py',
    '../_base_/schedules/disalign-stage1_180k.py'
]

num_classes = 1203
model = dict(
    roi_head=dict(
        # The three stages of mmdet's Cascade R-CNN (class-agnostic box
        # regression, tighter target stds per stage), for LVIS's classes.
        bbox_head=[
            dict(head, num_classes=num_classes)
            for head in _base_.model.roi_head.bbox_head
        ],
        mask_head=dict(num_classes=num_classes)),
    # LVIS allows up to 300 detections per image.
    test_cfg=dict(rcnn=dict(score_thr=0.0001, max_per_img=300)))
