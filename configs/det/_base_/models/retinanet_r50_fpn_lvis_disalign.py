# The LVIS RetinaNet of stage 1 (retinanet_r50_fpn_lvis.py) for DisAlign
# stage 2. Everything learned in stage 1 is frozen (backbone, neck, the
# classification and box convs, norm statistics included;
# DisAlignFreezeHook of the stage-2 schedule); only the calibration of the
# classification conv `retina_cls` is trained: per anchor and location the
# C sigmoid logits become sigma * (alpha' z + beta) + (1 - sigma) z
# (DisAlignCalibration, identity at init; alpha, beta per class shared over
# anchors, locations and FPN levels; sigma per location from the input of
# `retina_cls`). The head extends mmdet's RetinaHead, so the stage-1
# checkpoint loads without renaming. Loss: GRW sigmoid focal loss (gamma 2,
# alpha 0.25 as in stage 1), rho 0.8 as the reference LVIS configs, weights
# from the per-category IMAGE counts of the training annotations,
# background anchors weight 1, divided by the GRW weight of the positive
# anchors (docs/grw_loss.md). The configs set `class_freq` and the number
# of classes of their LVIS version.
_base_ = './retinanet_r50_fpn_lvis.py'

model = dict(
    # All weights come from `load_from`: no ImageNet initialisation.
    backbone=dict(init_cfg=None),
    bbox_head=dict(
        type='DisAlignRetinaHead',
        calibration=dict(type='DisAlignCalibration', init_mode='identity'),
        loss_cls=dict(
            _delete_=True,
            type='GRWFocalLoss',
            use_sigmoid=True,
            rho=0.8,
            gamma=2.0,
            alpha=0.25,
            background_weight=1.0,
            avg_mode='weighted',
            loss_weight=1.0)))
