# The reference stage 1 of DisAlign on LVIS v1 (plain training), by
# iterations: 180k iterations of 16 images (8 GPUs x 2), SGD lr 0.02,
# momentum 0.9, weight decay 1e-4, steps at 120k and 160k, 1000 linear
# warm-up iterations; mmdet's runtime otherwise.
_base_ = [
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py'
]

custom_imports = dict(imports=['mmdisalign.det'], allow_failed_imports=False)

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

# Stop early if the annotation files, the evaluator and the model disagree
# on the categories.
custom_hooks = [dict(type='DisAlignCategoryCheckHook')]
