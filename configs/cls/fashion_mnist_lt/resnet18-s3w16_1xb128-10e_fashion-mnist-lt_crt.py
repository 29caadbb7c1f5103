# Baseline cRT (classifier re-training, Kang et al. 2020) on the same frozen
# Fashion-MNIST-LT stage 1 as DisAlign: backbone and BN statistics frozen,
# the linear classifier ``head.fc`` re-initialised (its stage-1 weights are
# dropped from the checkpoint by the hook's ``reinit``, so it keeps the
# head's init_cfg values: normal, std 0.01) and re-trained with plain
# cross-entropy and class-balanced sampling (ClassBalancedSampler: a class
# uniformly, then an image of it), with the DisAlign stage-2 schedule
# (10 epochs, SGD lr 0.1, wd 5e-4, cosine per epoch).
# Train:  python tools/train.py CONFIG
_base_ = './resnet18-s3w16_1xb128-30e_fashion-mnist-lt.py'

load_from = 'work_dirs/resnet18-s3w16_1xb128-30e_fashion-mnist-lt/epoch_30.pth'
resume = False

train_dataloader = dict(
    sampler=dict(_delete_=True, type='ClassBalancedSampler'))

custom_hooks = [
    dict(type='DisAlignFreezeHook', trainable=['head.fc'], reinit=['head.fc'])
]

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=10, T_max=10)
]
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=10)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=1))
