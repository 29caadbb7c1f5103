# DisAlign stage 1: Cascade Mask R-CNN R-50-FPN on LVIS v1 with mmdet's
# Shared4Conv1FCBBoxHead in the three stages (four shared 3x3 convolutions
# of 256 channels with GroupNorm, 32 groups, then one shared 1024-d FC), the
# box head of mmdet's GN configs (mmdet::gn/mask-rcnn_r50_fpn_gn-all_2x_coco
# .py) and of many stronger Cascade baselines. Only the box heads change;
# data, schedule and everything else as in
# cascade-mask-rcnn_r50_fpn_8xb2-ms-180k_lvis-v1.py (the reference stage-1
# recipe: instance-balanced sampling, 180k iterations of 16 images, lr 0.02,
# steps at 120k and 160k).
_base_ = './cascade-mask-rcnn_r50_fpn_8xb2-ms-180k_lvis-v1.py'

head_norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)
model = dict(
    roi_head=dict(bbox_head=[
        dict(
            head,
            type='Shared4Conv1FCBBoxHead',
            conv_out_channels=256,
            norm_cfg=head_norm_cfg) for head in _base_.model.roi_head.bbox_head
    ]))
