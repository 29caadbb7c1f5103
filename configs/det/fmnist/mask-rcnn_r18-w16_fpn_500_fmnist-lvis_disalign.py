# DisAlign toy, stage 2: the shipped LVIS v1 stage-2 config
# (mask-rcnn_r50_fpn_ms-9k_lvis-v1_disalign.py: DisAlign calibration of the
# foreground logits, GRW loss with rho 0.8 on image counts, everything else
# frozen) with the sizes and data of the toy stage 1
# (mask-rcnn_r18-w16_fpn_2k_fmnist-lvis.py) and 500 iterations.
_base_ = '../mask_rcnn/mask-rcnn_r50_fpn_ms-9k_lvis-v1_disalign.py'

data_root = 'data/fmnist_lvis/'
classes = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
           'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
num_classes = 10
img_scale = (128, 128)
# Written by tools/analysis_tools/lvis_class_freq.py from the training file.
class_freq = data_root + 'annotations/lvis_fmnist_train_class_freq.json'
load_from = 'work_dirs/mask-rcnn_r18-w16_fpn_2k_fmnist-lvis/iter_2000.pth'

model = dict(
    backbone=dict(depth=18, base_channels=16, frozen_stages=-1, init_cfg=None),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=dict(
            in_channels=32,
            fc_out_channels=64,
            num_classes=num_classes,
            loss_cls=dict(class_freq=class_freq, num_classes=num_classes)),
        mask_roi_extractor=dict(out_channels=32),
        mask_head=dict(
            num_convs=2,
            in_channels=32,
            conv_out_channels=32,
            num_classes=num_classes)),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=300)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
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
val_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/lvis_fmnist_val.json',
        metainfo=dict(classes=classes),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/lvis_fmnist_val.json')
test_evaluator = val_evaluator

train_cfg = dict(max_iters=500, val_interval=500)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=100),
    dict(
        type='MultiStepLR',
        begin=0,
        end=500,
        by_epoch=False,
        milestones=[400],
        gamma=0.1)
]
default_hooks = dict(checkpoint=dict(interval=500), logger=dict(interval=50))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
