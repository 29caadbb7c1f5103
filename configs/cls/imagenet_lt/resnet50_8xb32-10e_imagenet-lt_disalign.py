# Stage 2 (DisAlign) on ImageNet-LT: the stage-1 model frozen (backbone,
# original classifier ``fc``, BN statistics), only the calibration (alpha,
# beta, confidence) trained with the GRW loss. Reference schedule: 10
# epochs, SGD lr 0.1 momentum 0.9, weight decay 5e-4 (calibration too),
# batch 256, cosine LR stepped per epoch, instance-balanced sampling,
# rho 1.2, reference classification init.
_base_ = './resnet50_8xb32-90e_imagenet-lt.py'

# The stage-1 checkpoint (tools/train.py's default work dir).
load_from = 'work_dirs/resnet50_8xb32-90e_imagenet-lt/epoch_90.pth'
resume = False

model = dict(
    head=dict(
        type='DisAlignLinearClsHead',
        calibration=dict(
            type='DisAlignCalibration', init_mode='reference_cls'),
        loss=dict(
            _delete_=True,
            type='GRWCrossEntropyLoss',
            # written by tools/analysis_tools/class_freq_cls.py (see the
            # dataset config)
            class_freq='data/imagenet/imagenet_lt_class_freq.json',
            rho=1.2,
            num_classes=1000)))

custom_hooks = [dict(type='DisAlignFreezeHook')]

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=10, T_max=10)
]
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=2)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=2, max_keep_ckpts=2))
