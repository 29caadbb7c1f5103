# DisAlign stage 1: Mask R-CNN R-50-FPN on LVIS v0.5, linear box classifier.
# The upstream mmdet LVIS recipe (multi-scale training, 0.0001 score
# threshold, 300 detections per image) with the reference stage 1 of
# DisAlign: instance-balanced sampling (no repeat-factor sampling) and
# 90k iterations of 16 images (8 GPUs x 2), lr 0.02, steps at 60k and 80k,
# 1000 linear warm-up iterations. The box head is mmdet's Shared2FCBBoxHead;
# its checkpoint loads into the stage-2 config without renaming.
_base_ = 'mmdet::lvis/mask-rcnn_r50_fpn_sample1e-3_ms-2x_lvis-v0.5.py'

custom_imports = dict(imports=['mmdisalign.det'], allow_failed_imports=False)

# Instance-balanced sampling: the upstream ClassBalancedDataset wrapper
# (repeat-factor sampling, threshold 1e-3) is removed.
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='LVISV05Dataset',
        data_root='data/lvis_v0.5/',
        ann_file='annotations/lvis_v0.5_train.json',
        data_prefix=dict(img='train2017/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline={{_base_.train_pipeline}},
        backend_args=None))

train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=90000,
    val_interval=90000)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=1000),
    dict(
        type='MultiStepLR',
        begin=0,
        end=90000,
        by_epoch=False,
        milestones=[60000, 80000],
        gamma=0.1)
]
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001))
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=10000))
log_processor = dict(by_epoch=False)

# Stop early if the annotation files, the evaluator and the model disagree
# on the categories.
custom_hooks = [dict(type='DisAlignCategoryCheckHook')]
