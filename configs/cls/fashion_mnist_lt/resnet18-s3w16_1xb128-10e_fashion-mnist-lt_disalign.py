# Stage 2 (DisAlign) on Fashion-MNIST-LT: everything from stage 1 frozen
# (backbone, neck, the original classifier ``fc``; BN statistics too), only
# the calibration (alpha, beta, confidence) trained with the GRW loss.
# Schedule of the reference ImageNet-LT stage 2: SGD lr 0.1, momentum 0.9,
# weight decay 5e-4 (calibration included), cosine stepped per epoch,
# instance-balanced sampling, rho 1.2, reference classification init.
_base_ = './resnet18-s3w16_1xb128-30e_fashion-mnist-lt.py'

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

custom_hooks = [dict(type='DisAlignFreezeHook')]

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=10, T_max=10)
]
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=10)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=1))
