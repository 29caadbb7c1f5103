# Baseline tau-normalisation (Kang et al. 2020) on the Fashion-MNIST-LT
# stage 1: zhat_j = z_j / ||w_j||^tau with tau 1, nothing trained. It is
# evaluated, not trained: give tools/test.py the stage-1 checkpoint (it
# loads without renaming; the calibration has no weights):
#   python tools/test.py CONFIG \
#       work_dirs/resnet18-s3w16_1xb128-30e_fashion-mnist-lt/epoch_30.pth
_base_ = './resnet18-s3w16_1xb128-30e_fashion-mnist-lt.py'

model = dict(
    head=dict(
        type='DisAlignLinearClsHead',
        calibration=dict(type='TauNormCalibration', tau=1.0)))
