# Toy stage 2: DisAlign on the tiny FCN of
#   fcn_r18-tiny-d8_1xb4-3k_fmnist-scenes-64x64.py
# It is the shipped ADE20K stage-2 config
#   fcn-disalign_r50-d8_8xb4-4k_ade20k-512x512.py
# with the toy model and data of stage 1 (both must stay identical to
# stage 1's) and a short schedule.
_base_ = './fcn-disalign_r50-d8_8xb4-4k_ade20k-512x512.py'

load_from = 'work_dirs/fcn_r18-tiny-d8_1xb4-3k_fmnist-scenes-64x64/iter_3000.pth'  # noqa: E501
data_root = 'data/fmnist_scenes'
class_freq = 'data/fmnist_scenes/train_pixel_freq.json'
num_classes = 10
crop_size = (64, 64)
norm_cfg = dict(type='BN', requires_grad=True)
metainfo = dict(
    classes=('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
             'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'),
    palette=[[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200],
             [245, 130, 48], [145, 30, 180], [70, 240, 240], [240, 50, 230],
             [210, 245, 60], [250, 190, 212]])

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        depth=18, stem_channels=16, base_channels=16, norm_cfg=norm_cfg),
    decode_head=dict(
        in_channels=128,
        channels=32,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        loss_decode=dict(class_freq=class_freq, num_classes=num_classes)),
    auxiliary_head=dict(
        in_channels=64,
        channels=16,
        num_classes=num_classes,
        norm_cfg=norm_cfg))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    dataset=dict(
        type='BaseSegDataset',
        data_root=data_root,
        metainfo=metainfo,
        reduce_zero_label=True,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(
        type='BaseSegDataset',
        data_root=data_root,
        metainfo=metainfo,
        reduce_zero_label=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(class_freq=class_freq, thresholds=(0.02, 0.005))
test_evaluator = val_evaluator

param_scheduler = [
    dict(
        type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=400,
        by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=400, val_interval=400)
default_hooks = dict(
    logger=dict(interval=100),
    checkpoint=dict(by_epoch=False, interval=400))
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
tta_model = None
