# Toy baseline tau-normalisation (Kang et al. 2020) on the Fashion-MNIST
# scenes stage 1: per pixel zhat_j = z_j / ||w_j||^tau with w_j the row of
# the decode head's ``conv_seg`` of class j, tau 1, nothing trained. It is
# evaluated, not trained: give tools/test.py the stage-1 checkpoint (it
# loads without renaming; the calibration has no weights):
#   python tools/test.py CONFIG \
#       work_dirs/fcn_r18-w16-d8_1xb4-3k_fmnist-scenes-64x64/iter_3000.pth
_base_ = './fcn_r18-w16-d8_1xb4-3k_fmnist-scenes-64x64.py'

model = dict(
    decode_head=dict(
        type='DisAlignFCNHead',
        calibration=dict(type='TauNormCalibration', tau=1.0)))
