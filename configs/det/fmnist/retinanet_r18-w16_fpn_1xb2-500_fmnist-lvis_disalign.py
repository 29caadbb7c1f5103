# DisAlign toy, stage 2: the toy RetinaNet stage 1
# (retinanet_r18-w16_fpn_1xb2-2k_fmnist-lvis.py; its sizes and data,
# untouched) with the DisAlign stage 2 of the shipped LVIS v1 RetinaNet
# configs (per-anchor calibration of the sigmoid logits, GRW focal loss
# with rho 0.8 on image counts, everything else frozen, lr 0.02, no
# gradient clipping;
# ../_base_/models/retinanet_r50_fpn_lvis_disalign.py and
# ../_base_/schedules/disalign-stage2_9k.py) and 500 iterations.
_base_ = './retinanet_r18-w16_fpn_1xb2-2k_fmnist-lvis.py'

# Written by tools/analysis_tools/lvis_class_freq.py from the training file.
class_freq = 'data/fmnist_lvis/annotations/lvis_fmnist_train_class_freq.json'
load_from = 'work_dirs/retinanet_r18-w16_fpn_1xb2-2k_fmnist-lvis/iter_2000.pth'

model = dict(
    bbox_head=dict(
        type='DisAlignRetinaHead',
        calibration=dict(type='DisAlignCalibration', init_mode='identity'),
        loss_cls=dict(
            _delete_=True,
            type='GRWFocalLoss',
            class_freq=class_freq,
            use_sigmoid=True,
            rho=0.8,
            num_classes=_base_.num_classes,
            gamma=2.0,
            alpha=0.25,
            background_weight=1.0,
            avg_mode='weighted',
            loss_weight=1.0)))

optim_wrapper = dict(optimizer=dict(lr=0.02), clip_grad=None)
train_cfg = dict(max_iters=500, val_interval=500)
param_scheduler = [
    _base_.param_scheduler[0],
    dict(_base_.param_scheduler[1], end=500, milestones=[400])
]
default_hooks = dict(checkpoint=dict(interval=500))
custom_hooks = _base_.custom_hooks + [
    dict(type='DisAlignFreezeHook'),
    dict(type='DisAlignStage2FastPathHook')
]
