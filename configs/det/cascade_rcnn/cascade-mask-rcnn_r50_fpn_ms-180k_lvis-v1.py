# DisAlign stage 1: Cascade Mask R-CNN R-50-FPN on LVIS v1, linear box
# classifiers. mmdet's Cascade Mask R-CNN with the LVIS v1 data and test
# settings of mmdet's LVIS recipe, and the reference stage-1 recipe of
# DisAlign (as for Mask R-CNN): instance-balanced sampling (no repeat-factor
# sampling), 180k iterations of 16 images (8 GPUs x 2), lr 0.02, steps at
# 120k and 160k, 1000 linear warm-up iterations. The reference released no
# Cascade configs; this one follows the paper's Table 9 setting.
_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/lvis_v1_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py'
]

custom_imports = dict(imports=['mmdisalign.det'], allow_failed_imports=False)

num_classes = 1203
model = dict(
    roi_head=dict(
        # The three stages of mmdet's Cascade R-CNN (class-agnostic box
        # regression, tighter target stds per stage).
        bbox_head=[
            dict(
                type='Shared2FCBBoxHead',
                in_channels=256,
                fc_out_channels=1024,
                roi_feat_size=7,
                num_classes=num_classes,
                bbox_coder=dict(
                    type='DeltaXYWHBBoxCoder',
                    target_means=[0., 0., 0., 0.],
                    target_stds=stds),
                reg_class_agnostic=True,
                loss_cls=dict(
                    type='CrossEntropyLoss',
                    use_sigmoid=False,
                    loss_weight=1.0),
                loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))
            for stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1],
                         [0.033, 0.033, 0.067, 0.067])
        ],
        mask_head=dict(num_classes=num_classes)),
    # LVIS allows up to 300 detections per image.
    test_cfg=dict(rcnn=dict(score_thr=0.0001, max_per_img=300)))

# Instance-balanced sampling: the upstream ClassBalancedDataset wrapper
# (repeat-factor sampling, threshold 1e-3) is removed.
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='LVISV1Dataset',
        data_root='data/lvis_v1/',
        ann_file='annotations/lvis_v1_train.json',
        data_prefix=dict(img=''),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline={{_base_.train_pipeline}},
        backend_args=None))

train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=180000,
    val_interval=180000)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=1000),
    dict(
        type='MultiStepLR',
        begin=0,
        end=180000,
        by_epoch=False,
        milestones=[120000, 160000],
        gamma=0.1)
]
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001))
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=20000))
log_processor = dict(by_epoch=False)

custom_hooks = [dict(type='DisAlignCategoryCheckHook')]
