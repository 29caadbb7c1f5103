# DisAlign stage 2 on cached features of the frozen Fashion-MNIST-LT stage 1:
# the recipe of the image stage-2 config (calibration, GRW loss, optimiser,
# schedule, sampler, seed, freeze hook), trained by the Runner on the pooled
# features that tools/cache_features.py extracted once instead of on images.
# The checkpoint is a complete stage-2 checkpoint: test it on images with the
# image config (IMAGE_CONFIG, the _base_ below). CACHE is the cache_dir below:
#   python tools/cache_features.py IMAGE_CONFIG --out CACHE
#   python tools/train.py CONFIG
#   python tools/test.py IMAGE_CONFIG work_dirs/<this config>/epoch_10.pth
# (--augment --passes P: P augmented views, epoch e reads view e mod P.
# The frozen network runs compiled by torch.compile, eagerly with
# --no-compile, which is faster for a set this small: docs/performance.md.)
_base_ = './resnet18-s3w16_1xb128-10e_fashion-mnist-lt_disalign.py'

model = dict(type='CachedFeatureClassifier')

train_dataloader = dict(
    num_workers=0,  # the features are memory-mapped
    persistent_workers=False,
    # a batch is read in one go and passed on as (N, D) features + labels
    collate_fn=dict(type='feature_cache_collate'),
    dataset=dict(
        _delete_=True,
        type='FeatureCacheDataset',
        cache_dir='work_dirs/resnet18-s3w16_1xb128-30e_fashion-mnist-lt/'
        'feature_cache'))

custom_hooks = [
    dict(type='DisAlignFreezeHook'),
    dict(type='FeatureCacheHook'),
]

# Trained on features, tested on images with the image config.
val_dataloader = None
val_evaluator = None
val_cfg = None
test_dataloader = None
test_evaluator = None
test_cfg = None
