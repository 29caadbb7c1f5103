# DisAlign toy, stage 1: a tiny RetinaNet on the long-tailed Fashion-MNIST
# scenes in LVIS format (tools/dataset_converters/fmnist_lvis_scenes.py;
# real objects pasted onto 128x128 canvases, 10 categories; boxes only). It
# is the shipped LVIS v1 RetinaNet stage-1 config
# (../retinanet/retinanet_r50_fpn_8xb2-ms-180k_lvis-v1.py) made small
# enough for a CPU: ResNet-18 with 16 base channels trained from scratch,
# 32-channel FPN, two 32-channel convs per branch, 2 images per batch, 2000
# iterations. Only sizes, data and schedule differ from the shipped config,
# and gradients are clipped (max norm 35, as mmdet's FCOS / ATSS configs):
# trained from scratch without it, the toy diverges to NaN after ~800
# iterations.
_base_ = '../retinanet/retinanet_r50_fpn_8xb2-ms-180k_lvis-v1.py'

data_root = 'data/fmnist_lvis/'
classes = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
           'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
num_classes = 10
img_scale = (128, 128)

model = dict(
    backbone=dict(depth=18, base_channels=16, frozen_stages=-1, init_cfg=None),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=32),
    bbox_head=dict(
        num_classes=num_classes,
        in_channels=32,
        feat_channels=32,
        stacked_convs=2),
    test_cfg=dict(nms_pre=500, max_per_img=100))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/lvis_fmnist_train.json',
        metainfo=dict(classes=classes),
        pipeline=train_pipeline))
# The same loader settings on the validation scenes.
val_dataloader = dict(
    train_dataloader,
    dataset=dict(
        train_dataloader['dataset'],
        ann_file='annotations/lvis_fmnist_val.json',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/lvis_fmnist_val.json')
test_evaluator = val_evaluator

optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
train_cfg = dict(max_iters=2000, val_interval=2000)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=100),
    dict(
        type='MultiStepLR',
        begin=0,
        end=2000,
        by_epoch=False,
        milestones=[1500],
        gamma=0.1)
]
default_hooks = dict(checkpoint=dict(interval=2000), logger=dict(interval=50))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
