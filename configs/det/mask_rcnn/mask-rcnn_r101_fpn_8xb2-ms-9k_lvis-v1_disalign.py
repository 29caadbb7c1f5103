# DisAlign stage 2: Mask R-CNN R-101-FPN on LVIS v1, linear box classifier.
_base_ = './mask-rcnn_r50_fpn_8xb2-ms-9k_lvis-v1_disalign.py'

load_from = 'work_dirs/mask-rcnn_r101_fpn_8xb2-ms-180k_lvis-v1/iter_180000.pth'

# All weights come from `load_from` (init_cfg=None inherited).
model = dict(backbone=dict(depth=101))
