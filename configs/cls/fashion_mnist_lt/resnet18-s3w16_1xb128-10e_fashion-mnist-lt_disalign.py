# Stage 2 (DisAlign) on Fashion-MNIST-LT: everything from stage 1 frozen
# (backbone, neck, the original classifier ``fc``; BN statistics too), only
# the calibration (alpha, beta, confidence) trained with the GRW loss,
# rho 1.2, reference classification init, instance-balanced sampling.
# Schedule: the reference ImageNet-LT stage 2
# (../_base_/schedules/disalign-stage2_10e.py: 10 epochs, SGD lr 0.1,
# momentum 0.9, weight decay 5e-4 (calibration included), cosine stepped
# per epoch) with stage 1's data, batch, logging and seed; it validates and
# saves once, at the end.
_base_ = [
    '../_base_/models/resnet18-s3w16_fashion-mnist.py',
    '../_base_/datasets/fashion-mnist-lt_bs128.py',
    '../_base_/schedules/disalign-stage2_10e.py',
]
custom_imports = dict(imports=['mmdisalign.cls'], allow_failed_imports=False)

# The stage-1 checkpoint (tools/train.py's default work dir).
load_from = 'work_dirs/resnet18-s3w16_1xb128-30e_fashion-mnist-lt/epoch_30.pth'
resume = False

model = dict(
    head=dict(
        type='DisAlignLinearClsHead',
        calibration=dict(
            type='DisAlignCalibration', init_mode='reference_cls'),
        loss=dict(
            _delete_=True,
            type='GRWCrossEntropyLoss',
            class_freq='data/fashion_mnist_lt/class_freq.json',
            rho=1.2,
            num_classes=10)))

train_cfg = dict(val_interval=10)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(interval=10, max_keep_ckpts=1))
randomness = dict(seed=0, deterministic=False)
