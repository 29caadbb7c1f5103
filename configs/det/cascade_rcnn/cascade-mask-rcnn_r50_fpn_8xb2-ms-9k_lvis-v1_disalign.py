# DisAlign stage 2: Cascade Mask R-CNN R-50-FPN on LVIS v1, linear box
# classifiers. Each of the three box heads gets its own calibration (only
# the C foreground logits; the background logit is unchanged) and its own
# GRW loss (rho 0.8, per-category IMAGE counts of the LVIS v1 training
# annotations, background weight 1), weighted by the cascade's stage loss
# weights (1, 0.5, 0.25). Everything else is frozen, the mask heads
# included. Schedule as for Mask R-CNN on LVIS v1: 9000 iterations of 16
# images, lr 0.02, step at 8000, 1000 warm-up iterations, wd 1e-4, no
# repeat-factor sampling (../_base_/schedules/disalign-stage2_9k.py).
# Stage 1: cascade-mask-rcnn_r50_fpn_8xb2-ms-180k_lvis-v1.py.
_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    '../_base_/datasets/lvis-v1_instance-balanced.py',
    '../_base_/schedules/disalign-stage2_9k.py'
]

load_from = ('work_dirs/cascade-mask-rcnn_r50_fpn_8xb2-ms-180k_lvis-v1/'
             'iter_180000.pth')
class_freq = 'data/lvis_v1/annotations/lvis_v1_train_class_freq.json'

num_classes = 1203
model = dict(
    backbone=dict(init_cfg=None),
    roi_head=dict(
        bbox_head=[
            dict(
                head,
                type='DisAlignShared2FCBBoxHead',
                num_classes=num_classes,
                calibration=dict(
                    type='DisAlignCalibration', init_mode='identity'),
                loss_cls=dict(
                    type='GRWCrossEntropyLoss',
                    class_freq=class_freq,
                    rho=0.8,
                    num_classes=num_classes,
                    with_background=True,
                    background_weight=1.0,
                    avg_mode='weighted',
                    loss_weight=1.0))
            for head in _base_.model.roi_head.bbox_head
        ],
        mask_head=dict(num_classes=num_classes)),
    # LVIS allows up to 300 detections per image.
    test_cfg=dict(rcnn=dict(score_thr=0.0001, max_per_img=300)))
