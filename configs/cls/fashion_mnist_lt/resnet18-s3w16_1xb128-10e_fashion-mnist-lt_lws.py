# Baseline LWS (learnable weight scaling, Kang et al. 2020) on the same
# frozen Fashion-MNIST-LT stage 1 as DisAlign: logits rescaled per class,
# zhat_j = (1 + alpha_j) z_j (alpha starts at 0: the stage-1 model), only
# alpha trained, with cross-entropy and class-balanced sampling, on the
# DisAlign stage-2 schedule.
# Train:  python tools/train.py CONFIG
_base_ = './resnet18-s3w16_1xb128-30e_fashion-mnist-lt.py'

load_from = 'work_dirs/resnet18-s3w16_1xb128-30e_fashion-mnist-lt/epoch_30.pth'
resume = False

model = dict(
    head=dict(
        type='DisAlignLinearClsHead',
        calibration=dict(type='LWSCalibration')))

train_dataloader = dict(
    sampler=dict(_delete_=True, type='ClassBalancedSampler'))

custom_hooks = [dict(type='DisAlignFreezeHook')]

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=10, T_max=10)
]
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=10)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=1))
