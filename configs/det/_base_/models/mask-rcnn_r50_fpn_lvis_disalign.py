# The LVIS Mask R-CNN of stage 1 (mask-rcnn_r50_fpn_lvis.py) for DisAlign
# stage 2. Everything learned in stage 1 is frozen (backbone, neck, RPN, box
# FCs, classifier, box regressor and the whole mask head, norm statistics
# included; DisAlignFreezeHook of the stage-2 schedule); only the
# calibration of the box head is trained: the C foreground logits become
# sigma * (alpha' z + beta) + (1 - sigma) z (DisAlignCalibration, identity
# at init), the background logit is unchanged. The box head extends mmdet's
# Shared2FCBBoxHead, so the stage-1 checkpoint loads without renaming.
# Loss: GRW cross-entropy, rho 0.8, foreground weights from the
# per-category IMAGE counts of the training annotations, background weight
# 1, weighted mean over all sampled RoIs. The configs set `class_freq` and
# the number of classes of their LVIS version.
_base_ = './mask-rcnn_r50_fpn_lvis.py'

model = dict(
    # All weights come from `load_from`: no ImageNet initialisation.
    backbone=dict(init_cfg=None),
    roi_head=dict(
        bbox_head=dict(
            type='DisAlignShared2FCBBoxHead',
            calibration=dict(type='DisAlignCalibration', init_mode='identity'),
            loss_cls=dict(
                _delete_=True,
                type='GRWCrossEntropyLoss',
                rho=0.8,
                with_background=True,
                background_weight=1.0,
                avg_mode='weighted',
                loss_weight=1.0))))
