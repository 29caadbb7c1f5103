# Stage 2 (DisAlign) on iNaturalist 2018. The reference released no
# iNaturalist schedule or rho; we chose the ImageNet-LT stage 2 as is
# (../_base_/schedules/disalign-stage2_10e.py: 10 epochs, SGD lr 0.1
# momentum 0.9, wd 5e-4, batch 256, cosine LR per epoch; instance-balanced
# sampling, rho 1.2, reference_cls init): it is the only released
# classification recipe, and rho 1.2 is in the range the paper found best
# on ImageNet-LT.
_base_ = [
    'mmpretrain::_base_/models/resnet50.py',
    '../_base_/datasets/inat2018_bs32.py',
    '../_base_/schedules/disalign-stage2_10e.py',
]
custom_imports = dict(imports=['mmdisalign.cls'], allow_failed_imports=False)

load_from = 'work_dirs/resnet50_8xb32-90e_inat2018/epoch_90.pth'
resume = False

model = dict(
    head=dict(
        type='DisAlignLinearClsHead',
        num_classes=8142,
        topk=(1, 5),
        calibration=dict(
            type='DisAlignCalibration', init_mode='reference_cls'),
        loss=dict(
            _delete_=True,
            type='GRWCrossEntropyLoss',
            class_freq='data/inaturalist2018/inat2018_class_freq.json',
            rho=1.2,
            num_classes=8142)))
