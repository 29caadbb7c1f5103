# Toy baseline tau-normalisation (Kang et al. 2020) on the Fashion-MNIST
# LVIS scenes stage 1: zhat_j = z_j / ||w_j||^tau for the foreground logits
# of the box head (w_j: row j of fc_cls), tau 1; the background logit
# (mmdet puts it last) passes unchanged; nothing trained. It is evaluated,
# not trained: give tools/test.py the stage-1 checkpoint (it loads without
# renaming; the calibration has no weights):
#   python tools/test.py CONFIG \
#       work_dirs/mask-rcnn_r18-w16_fpn_1xb2-2k_fmnist-lvis/iter_2000.pth
_base_ = './mask-rcnn_r18-w16_fpn_1xb2-2k_fmnist-lvis.py'

# The stage-1 checkpoint: it loads without renaming (no calibration weights)
load_from = 'work_dirs/mask-rcnn_r18-w16_fpn_1xb2-2k_fmnist-lvis/iter_2000.pth'

model = dict(
    roi_head=dict(
        bbox_head=dict(
            type='DisAlignShared2FCBBoxHead',
            calibration=dict(type='TauNormCalibration', tau=1.0))))
