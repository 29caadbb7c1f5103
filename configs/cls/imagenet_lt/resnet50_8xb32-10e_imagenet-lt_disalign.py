# Stage 2 (DisAlign) on ImageNet-LT: the stage-1 model
# (resnet50_8xb32-90e_imagenet-lt.py) frozen (backbone, original classifier
# ``fc``, BN statistics), only the calibration (alpha, beta, confidence)
# trained with the GRW loss, rho 1.2, reference classification init.
# Reference schedule (../_base_/schedules/disalign-stage2_10e.py): 10
# epochs, SGD lr 0.1 momentum 0.9, weight decay 5e-4 (calibration too),
# batch 256, cosine LR stepped per epoch, instance-balanced sampling.
_base_ = [
    'mmpretrain::_base_/models/resnet50.py',
    '../_base_/datasets/imagenet-lt_bs32.py',
    '../_base_/schedules/disalign-stage2_10e.py',
]
custom_imports = dict(imports=['mmdisalign.cls'], allow_failed_imports=False)

# The stage-1 checkpoint (tools/train.py's default work dir).
load_from = 'work_dirs/resnet50_8xb32-90e_imagenet-lt/epoch_90.pth'
resume = False

model = dict(
    head=dict(
        type='DisAlignLinearClsHead',
        num_classes=1000,
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
