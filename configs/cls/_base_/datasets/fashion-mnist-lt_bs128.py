# Fashion-MNIST-LT (imbalance ratio 100): build it with
#   python tools/dataset_converters/fashion_mnist_lt.py data/fashion_mnist_lt
# Lists use the ImageNet-LT format ("relative/path label"), read by
# LongTailListDataset (mmdisalign.cls).
dataset_type = 'LongTailListDataset'
data_root = 'data/fashion_mnist_lt/'
classes = data_root + 'classes.txt'

data_preprocessor = dict(
    num_classes=10,
    # grayscale Fashion-MNIST statistics (0.2860, 0.3530) x 255
    mean=[72.94],
    std=[90.02],
    to_rgb=False)

train_pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='RandomCrop', crop_size=28, padding=2),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=128,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='fashion_mnist_lt_train.txt',
        data_prefix='images',
        classes=classes,
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
# Fashion-MNIST has no spare validation images for class 0 at ratio 100
# (all 6000 are used); validation runs on the balanced test list, once at
# the end of training (as is usual for CIFAR-LT-style benchmarks).
val_dataloader = dict(
    train_dataloader,
    batch_size=500,
    dataset=dict(
        train_dataloader['dataset'],
        ann_file='fashion_mnist_lt_test.txt',
        test_mode=True,
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
# Many / medium / few: > 1000, 200..1000, < 200 training images (4 / 3 / 3
# classes at ratio 100; ImageNet-LT's 100 / 20 would leave "few" empty).
val_evaluator = dict(
    type='LongTailAccuracy',
    data_root=data_root,
    train_ann_file='fashion_mnist_lt_train.txt',
    many_thr=1000,
    few_thr=200)

test_dataloader = val_dataloader
test_evaluator = val_evaluator

# Tuning (tools/tune_calibration.py) reads this held-out validation list,
# never the test list: it exists when the data set is built with
#   python tools/dataset_converters/fashion_mnist_lt.py OUT --val-per-class N
# (N unused training images per class; the training list then keeps
# 6000 - N images of class 0, so train stage 1 on that build).
tuning_ann_file = 'fashion_mnist_lt_val.txt'
