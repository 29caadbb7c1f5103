# Baseline cRT (classifier re-training, Kang et al. 2020) on the same frozen
# Fashion-MNIST-LT stage 1 as DisAlign: backbone and BN statistics frozen,
# the linear classifier ``head.fc`` re-initialised (its stage-1 weights are
# dropped from the checkpoint by the hook's ``reinit``, so it keeps the
# head's init_cfg values: normal, std 0.01) and re-trained with plain
# cross-entropy and class-balanced sampling (ClassBalancedSampler: a class
# uniformly, then an image of it), on the DisAlign stage-2 schedule
# (../_base_/schedules/disalign-stage2_10e.py: 10 epochs, SGD lr 0.1,
# wd 5e-4, cosine per epoch) as the DisAlign config runs it.
# Train:  python tools/train.py CONFIG
_base_ = [
    '../_base_/models/resnet18-s3w16_fashion-mnist.py',
    '../_base_/datasets/fashion-mnist-lt_bs128.py',
    '../_base_/schedules/disalign-stage2_10e.py',
]
custom_imports = dict(imports=['mmdisalign.cls'], allow_failed_imports=False)

load_from = 'work_dirs/resnet18-s3w16_1xb128-30e_fashion-mnist-lt/epoch_30.pth'
resume = False

train_dataloader = dict(
    sampler=dict(_delete_=True, type='ClassBalancedSampler'))

custom_hooks = [
    dict(type='DisAlignFreezeHook', trainable=['head.fc'], reinit=['head.fc'])
]

train_cfg = dict(val_interval=10)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(interval=10, max_keep_ckpts=1))
randomness = dict(seed=0, deterministic=False)
