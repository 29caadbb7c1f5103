# ImageNet-LT (1000 classes, 115.8K training images): the split lists of
# Liu et al. (OLTR), "relative/path label" per line, paths relative to the
# ImageNet root, read by LongTailListDataset (mmdisalign.cls):
#   data/imagenet/{train,val}/...            ILSVRC-2012 images
#   data/imagenet/ImageNet_LT_{train,val,test}.txt
# The class-frequency JSON of the GRW loss is written once with
#   python tools/analysis_tools/class_freq_cls.py \
#       --ann-file data/imagenet/ImageNet_LT_train.txt --num-classes 1000 \
#       --out data/imagenet/imagenet_lt_class_freq.json
# 8 GPUs x 32 images = batch 256, as in the reference (``auto_scale_lr``).
dataset_type = 'LongTailListDataset'
data_root = 'data/imagenet/'
num_classes = 1000

data_preprocessor = dict(
    num_classes=num_classes,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

# Reference train augmentation: RandomResizedCrop(224), horizontal flip,
# ColorJitter(0.4, 0.4, 0.4, 0); test: short edge 256, centre crop 224.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=5,
    persistent_workers=True,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ImageNet_LT_train.txt',
        num_classes=num_classes,
        pipeline=train_pipeline),
    # instance-balanced sampling (reference: stage 1 and stage 2)
    sampler=dict(type='DefaultSampler', shuffle=True),
)
# Validation: the training loader's settings on the validation list, in
# test mode, with the test pipeline, in order.
val_dataloader = dict(
    train_dataloader,
    dataset=dict(
        train_dataloader['dataset'],
        ann_file='ImageNet_LT_val.txt',
        test_mode=True,
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
# Many / medium / few: > 100, 20..100, < 20 training images.
val_evaluator = dict(
    type='LongTailAccuracy',
    data_root=data_root,
    train_ann_file='ImageNet_LT_train.txt',
    num_classes=num_classes,
    many_thr=100,
    few_thr=20)

# The reported numbers are on the test list (50 images per class).
test_dataloader = dict(
    val_dataloader,
    dataset=dict(val_dataloader['dataset'], ann_file='ImageNet_LT_test.txt'))
test_evaluator = val_evaluator
# Tuning (tools/tune_calibration.py) reads the validation list (20 images
# per class), never the test list.
tuning_ann_file = 'ImageNet_LT_val.txt'

# The lr of the ImageNet-LT schedules is for a total batch of 256.
auto_scale_lr = dict(base_batch_size=256)
