# Baseline cRT (classifier re-training, Kang et al. 2020) on the same frozen
# Fashion-MNIST-LT stage 1 as DisAlign: backbone and BN statistics frozen,
# the linear classifier ``head.fc`` trained with plain cross-entropy and
# class-balanced sampling (ClassBalancedSampler: a class uniformly, then an
# image of it), with the DisAlign stage-2 schedule (10 epochs, SGD lr 0.1,
# wd 5e-4, cosine per epoch).
# NOTE: ``load_from`` also fills ``head.fc`` with the stage-1 classifier,
# so the classifier is re-trained starting from the stage-1 weights (the
# runner loads checkpoints after weight init and cannot skip keys); cRT in
# the paper re-initialises it first.
# Train:  python tools/train.py CONFIG
_base_ = './resnet18-s3w16_1xb128-30e_fashion-mnist-lt.py'

load_from = 'work_dirs/resnet18-s3w16_1xb128-30e_fashion-mnist-lt/epoch_30.pth'
resume = False

train_dataloader = dict(
    sampler=dict(_delete_=True, type='ClassBalancedSampler'))

custom_hooks = [dict(type='DisAlignFreezeHook', trainable=['head.fc'])]

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=10, T_max=10)
]
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=10)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=1))
