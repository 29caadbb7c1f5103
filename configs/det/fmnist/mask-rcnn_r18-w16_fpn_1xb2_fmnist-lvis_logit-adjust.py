# Toy baseline post-hoc logit adjustment (Menon et al. 2021) on the
# Fashion-MNIST LVIS scenes stage 1: zhat_j = z_j - tau log(n_j / n) for
# the foreground logits of the box head, tau 1, with the per-category
# image counts of the class-frequency file (the counts of DisAlign's GRW
# loss); the background logit (mmdet puts it last) passes unchanged;
# nothing trained. It is evaluated, not trained: give tools/test.py the
# stage-1 checkpoint:
#   python tools/test.py CONFIG \
#       work_dirs/mask-rcnn_r18-w16_fpn_1xb2-2k_fmnist-lvis/iter_2000.pth
_base_ = './mask-rcnn_r18-w16_fpn_1xb2-2k_fmnist-lvis.py'

# The stage-1 checkpoint: it loads without renaming (no calibration weights)
load_from = 'work_dirs/mask-rcnn_r18-w16_fpn_1xb2-2k_fmnist-lvis/iter_2000.pth'

# Written by tools/analysis_tools/lvis_class_freq.py from the training file.
class_freq = 'data/fmnist_lvis/annotations/lvis_fmnist_train_class_freq.json'

model = dict(
    roi_head=dict(
        bbox_head=dict(
            type='DisAlignShared2FCBBoxHead',
            calibration=dict(
                type='LogitAdjustCalibration', class_freq=class_freq,
                tau=1.0))))
