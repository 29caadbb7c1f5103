# Toy stage 2: DisAlign on the tiny FCN of stage 1
#   fcn_r18-w16-d8_1xb4-3k_fmnist-scenes-64x64.py
# (its model and data, untouched) with the DisAlign stage 2 of the shipped
# ADE20K config
#   fcn_r50-d8_8xb4-4k_ade20k-512x512_disalign.py
# (calibrated decode head with the reference confidence, GRW loss with
# rho 0.2 averaged over all pixels, auxiliary loss weight 0, SGD lr 0.01,
# poly LR, only the calibration trained) and a short schedule.
_base_ = './fcn_r18-w16-d8_1xb4-3k_fmnist-scenes-64x64.py'

load_from = 'work_dirs/fcn_r18-w16-d8_1xb4-3k_fmnist-scenes-64x64/iter_3000.pth'  # noqa: E501

model = dict(
    decode_head=dict(
        type='DisAlignFCNHead',
        confidence='reference',
        loss_decode=dict(
            _delete_=True,
            type='GRWCrossEntropyLoss',
            class_freq=_base_.class_freq,
            num_classes=_base_.num_classes,
            rho=0.2,
            avg_mode='pixel',
            loss_weight=1.0)),
    auxiliary_head=dict(loss_decode=dict(loss_weight=0.0)))

optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = [dict(_base_.param_scheduler[0], end=400)]
train_cfg = dict(max_iters=400, val_interval=400)
default_hooks = dict(checkpoint=dict(interval=400))
custom_hooks = [
    dict(type='DisAlignFreezeHook'),
    dict(type='DisAlignStage2FastPathHook')
]
