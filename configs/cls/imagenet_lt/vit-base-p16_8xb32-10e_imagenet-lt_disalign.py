# Stage 2 (DisAlign) on ImageNet-LT with ViT-B/16: the stage-1 model
# (vit-base-p16_8xb32-90e_imagenet-lt.py) frozen (backbone, the head's
# hidden layer ``layers.pre_logits`` and classifier ``layers.head``), only
# the calibration trained; its confidence is computed from the input of
# ``layers.head`` (the 3072-d hidden feature after Tanh). GRW loss, rho
# 1.2, reference classification init, no Mixup (plain labels, as the
# reference stage 2); the frozen backbone runs without dropout, as at test
# time (drop_rate has no weights: the checkpoint is the same). The
# reference stage-2 schedule of the ResNet configs
# (../_base_/schedules/disalign-stage2_10e.py): 10 epochs, SGD lr 0.1
# momentum 0.9, weight decay 5e-4, batch 256, cosine LR per epoch,
# instance-balanced sampling.
_base_ = [
    'mmpretrain::_base_/models/vit-base-p16.py',
    '../_base_/datasets/imagenet-lt_bs32.py',
    '../_base_/schedules/disalign-stage2_10e.py',
]
custom_imports = dict(imports=['mmdisalign.cls'], allow_failed_imports=False)

# The stage-1 checkpoint (tools/train.py's default work dir).
load_from = 'work_dirs/vit-base-p16_8xb32-90e_imagenet-lt/epoch_90.pth'
resume = False

model = dict(
    backbone=dict(drop_rate=0.0),
    head=dict(
        type='DisAlignVisionTransformerClsHead',
        num_classes=1000,
        hidden_dim=3072,
        topk=(1, 5),
        calibration=dict(
            type='DisAlignCalibration', init_mode='reference_cls'),
        loss=dict(
            _delete_=True,
            type='GRWCrossEntropyLoss',
            # written by tools/analysis_tools/class_freq_cls.py (see the
            # dataset config)
            class_freq='data/imagenet/imagenet_lt_class_freq.json',
            rho=1.2,
            num_classes=1000)))
