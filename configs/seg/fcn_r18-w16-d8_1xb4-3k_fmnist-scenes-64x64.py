# Toy stage 1: a tiny FCN (ResNet-18-D8, 16 base channels) trained from
# scratch on the Fashion-MNIST scenes (64x64 canvases, 10 long-tailed
# classes) built by
#   python tools/dataset_converters/fmnist_ade_scenes.py data/fmnist_scenes
# 3000 iterations take a few minutes on a CPU. Stage 2:
#   fcn_r18-w16-d8_1xb4-400_fmnist-scenes-64x64_disalign.py
_base_ = 'mmseg::fcn/fcn_r50-d8_4xb4-160k_ade20k-512x512.py'
custom_imports = dict(imports=['mmdisalign.seg'], allow_failed_imports=False)

data_root = 'data/fmnist_scenes'
# python tools/analysis_tools/seg_pixel_freq.py <this config> <class_freq>
class_freq = 'data/fmnist_scenes/train_pixel_freq.json'
num_classes = 10
crop_size = (64, 64)
norm_cfg = dict(type='BN', requires_grad=True)
metainfo = dict(
    classes=('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
             'Shirt', 'Sneaker', 'Bag', 'Ankle boot'),
    palette=[[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200],
             [245, 130, 48], [145, 30, 180], [70, 240, 240], [240, 50, 230],
             [210, 245, 60], [250, 190, 212]])

model = dict(
    pretrained=None,
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        depth=18, stem_channels=16, base_channels=16, norm_cfg=norm_cfg),
    decode_head=dict(
        in_channels=128,
        channels=32,
        num_classes=num_classes,
        norm_cfg=norm_cfg),
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
    dataset=dict(train_dataloader['dataset'], pipeline=test_pipeline))
test_dataloader = val_dataloader
# Toy groups by training pixel ratio: head > 2 %, body 0.5..2 %, tail
# <= 0.5 % (5 / 3 / 2 classes with the builder's defaults).
val_evaluator = dict(
    type='HeadBodyTailIoUMetric',
    class_freq=class_freq,
    thresholds=(0.02, 0.005),
    iou_metrics=['mIoU'])
test_evaluator = val_evaluator

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=0.0005))
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=1e-4,
        power=0.9,
        begin=0,
        end=3000,
        by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=3000, val_interval=1000)
default_hooks = dict(
    logger=dict(interval=100), checkpoint=dict(by_epoch=False, interval=3000))
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
tta_model = None
