# Baseline post-hoc logit adjustment (Menon et al. 2021) on the
# Fashion-MNIST-LT stage 1: zhat_j = z_j - tau log(n_j / n), tau 1, with
# the training counts of the class-frequency JSON; nothing trained. It is
# evaluated, not trained: give tools/test.py the stage-1 checkpoint:
#   python tools/test.py CONFIG \
#       work_dirs/resnet18-s3w16_1xb128-30e_fashion-mnist-lt/epoch_30.pth
_base_ = './resnet18-s3w16_1xb128-30e_fashion-mnist-lt.py'

model = dict(
    head=dict(
        type='DisAlignLinearClsHead',
        calibration=dict(
            type='LogitAdjustCalibration',
            class_freq='data/fashion_mnist_lt/class_freq.json',
            tau=1.0)))
# Checks before testing that the frequency file lists the data set's classes
# in its order (stage-2 configs get this check from DisAlignFreezeHook).
custom_hooks = [dict(type='ClassFreqCheckHook')]
