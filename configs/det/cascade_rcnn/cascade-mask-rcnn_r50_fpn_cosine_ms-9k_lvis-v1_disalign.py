# DisAlign stage 2: Cascade Mask R-CNN R-50-FPN on LVIS v1, cosine box
# classifiers (NormedLinear, scale fixed at 20; see the stage-1 config). The
# calibrations' confidence uses the raw (un-normalised) RoI feature.
_base_ = './cascade-mask-rcnn_r50_fpn_ms-9k_lvis-v1_disalign.py'

load_from = ('work_dirs/cascade-mask-rcnn_r50_fpn_cosine_ms-180k_lvis-v1/'
             'iter_180000.pth')
class_freq = 'data/lvis_v1/annotations/lvis_v1_train_class_freq.json'

num_classes = 1203
model = dict(
    roi_head=dict(bbox_head=[
        dict(
            type='DisAlignShared2FCBBoxHead',
            in_channels=256,
            fc_out_channels=1024,
            roi_feat_size=7,
            num_classes=num_classes,
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder',
                target_means=[0., 0., 0., 0.],
                target_stds=stds),
            reg_class_agnostic=True,
            cls_predictor_cfg=dict(
                type='NormedLinear', tempearture=20, bias=False),
            calibration=dict(type='DisAlignCalibration', init_mode='identity'),
            loss_cls=dict(
                type='GRWCrossEntropyLoss',
                class_freq=class_freq,
                rho=0.8,
                num_classes=num_classes,
                with_background=True,
                background_weight=1.0,
                avg_mode='weighted',
                loss_weight=1.0),
            loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))
        for stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1],
                     [0.033, 0.033, 0.067, 0.067])
    ]))
