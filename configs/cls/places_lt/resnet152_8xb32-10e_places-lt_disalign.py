# Stage 2 (DisAlign) on Places-LT. The reference released no Places-LT
# schedule or rho; we chose the ImageNet-LT stage 2 (10 epochs, SGD lr 0.1
# momentum 0.9, wd 5e-4, batch 256, cosine LR per epoch, instance-balanced
# sampling, rho 1.2, reference_cls init), the only released recipe.
_base_ = './resnet152_8xb32-30e_places-lt.py'

load_from = 'work_dirs/resnet152_8xb32-30e_places-lt/epoch_30.pth'
resume = False

model = dict(
    head=dict(
        type='DisAlignLinearClsHead',
        calibration=dict(
            type='DisAlignCalibration', init_mode='reference_cls'),
        loss=dict(
            _delete_=True,
            type='GRWCrossEntropyLoss',
            class_freq='data/places365/places_lt_class_freq.json',
            rho=1.2,
            num_classes=365)))

custom_hooks = [dict(type='DisAlignFreezeHook')]

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=10, T_max=10)
]
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=2)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=2, max_keep_ckpts=2))
