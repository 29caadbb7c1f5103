# Toy baseline post-hoc logit adjustment (Menon et al. 2021) on the
# Fashion-MNIST scenes stage 1: per pixel zhat_j = z_j - tau log(n_j / n),
# tau 1, with the training pixel counts of the class-frequency file;
# nothing trained. It is evaluated, not trained: give tools/test.py the
# stage-1 checkpoint:
#   python tools/test.py CONFIG \
#       work_dirs/fcn_r18-w16-d8_1xb4-3k_fmnist-scenes-64x64/iter_3000.pth
_base_ = './fcn_r18-w16-d8_1xb4-3k_fmnist-scenes-64x64.py'

model = dict(
    decode_head=dict(
        type='DisAlignFCNHead',
        calibration=dict(
            type='LogitAdjustCalibration',
            class_freq=_base_.class_freq,
            tau=1.0)))
