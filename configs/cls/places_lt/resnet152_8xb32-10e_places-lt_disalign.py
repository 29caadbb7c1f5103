# Stage 2 (DisAlign) on Places-LT. The reference released no Places-LT
# schedule or rho; we chose the ImageNet-LT stage 2
# (../_base_/schedules/disalign-stage2_10e.py: 10 epochs, SGD lr 0.1
# momentum 0.9, wd 5e-4, batch 256, cosine LR per epoch; instance-balanced
# sampling, rho 1.2, reference_cls init), the only released recipe.
_base_ = [
    'mmpretrain::_base_/models/resnet152.py',
    '../_base_/datasets/places-lt_bs32.py',
    '../_base_/schedules/disalign-stage2_10e.py',
]
custom_imports = dict(imports=['mmdisalign.cls'], allow_failed_imports=False)

load_from = 'work_dirs/resnet152_8xb32-30e_places-lt/epoch_30.pth'
resume = False

model = dict(
    head=dict(
        type='DisAlignLinearClsHead',
        num_classes=365,
        topk=(1, 5),
        calibration=dict(
            type='DisAlignCalibration', init_mode='reference_cls'),
        loss=dict(
            _delete_=True,
            type='GRWCrossEntropyLoss',
            class_freq='data/places365/places_lt_class_freq.json',
            rho=1.2,
            num_classes=365)))
