# DisAlign stage 2: Cascade Mask R-CNN R-50-FPN on LVIS v1 with
# Shared4Conv1FC GN box heads. Each stage's box head becomes a
# DisAlignShared4Conv1FCBBoxHead with its own calibration (confidence from
# the output of the shared FC, the input of fc_cls; only the C foreground
# logits calibrated) and its own GRW loss (rho 0.8, per-category image
# counts, background weight 1). Everything else is frozen, the convolutions
# and their GroupNorms included. The LVIS v1 stage-2 recipe
# (../_base_/schedules/disalign-stage2_9k.py): 9000 iterations of 16
# images, lr 0.02, step at 8000, 1000 warm-up iterations, wd 1e-4.
# Stage 1: cascade-mask-rcnn_r50_fpn_4conv1fc-gn_8xb2-ms-180k_lvis-v1.py.
_base_ = './cascade-mask-rcnn_r50_fpn_8xb2-ms-9k_lvis-v1_disalign.py'

load_from = ('work_dirs/cascade-mask-rcnn_r50_fpn_4conv1fc-gn_8xb2-ms-180k_'
             'lvis-v1/iter_180000.pth')

head_norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)
model = dict(
    roi_head=dict(bbox_head=[
        dict(
            head,
            type='DisAlignShared4Conv1FCBBoxHead',
            conv_out_channels=256,
            norm_cfg=head_norm_cfg) for head in _base_.model.roi_head.bbox_head
    ]))
