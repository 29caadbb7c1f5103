# DisAlign stage 2: Mask R-CNN ResNeXt-101 32x4d-FPN on LVIS v1, cosine box
# classifier.
_base_ = './mask-rcnn_r50_fpn_cosine_8xb2-ms-9k_lvis-v1_disalign.py'

load_from = ('work_dirs/mask-rcnn_x101-32x4d_fpn_cosine_8xb2-ms-180k_lvis-v1/'
             'iter_180000.pth')

# All weights come from `load_from` (init_cfg=None inherited).
model = dict(backbone=dict(type='ResNeXt', depth=101, groups=32, base_width=4))
