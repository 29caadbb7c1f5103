# DisAlign stage 2: Mask R-CNN ResNeXt-101 32x4d-FPN on LVIS v0.5, linear box
# classifier.
_base_ = './mask-rcnn_r50_fpn_8xb2-ms-4.5k_lvis-v0.5_disalign.py'

load_from = ('work_dirs/mask-rcnn_x101-32x4d_fpn_8xb2-ms-90k_lvis-v0.5/'
             'iter_90000.pth')

# All weights come from `load_from` (init_cfg=None inherited).
model = dict(backbone=dict(type='ResNeXt', depth=101, groups=32, base_width=4))
