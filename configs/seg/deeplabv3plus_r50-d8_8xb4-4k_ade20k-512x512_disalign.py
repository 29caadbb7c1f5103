# DisAlign stage 2 for DeepLabV3+ R-50-D8 on ADE20K 512x512.
#
# Stage 1 is the upstream mmseg model of
#   mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-160k_ade20k-512x512.py
# (its model, data and runtime are the _base_ below, with the same crop
# size and number of classes): train it with that config, or download its
# checkpoint (mmseg model zoo)
#   https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3plus/deeplabv3plus_r50-d8_512x512_160k_ade20k/deeplabv3plus_r50-d8_512x512_160k_ade20k_20200615_124504-6135c7e0.pth  # noqa: E501
# and point load_from at the local file. Nothing is downloaded at run time.
# The class-frequency file comes from tools/analysis_tools/seg_pixel_freq.py.
# Stage 2 as in fcn_r50-d8_8xb4-4k_ade20k-512x512_disalign.py (reference
# schedule ../_base_/schedules/disalign-stage2_4k.py: 4000 iterations, SGD
# lr 0.01, momentum 0.9, wd 5e-4, poly LR, 8 GPUs x 4 images; GRW rho 0.2
# over all pixels, auxiliary loss weight 0).
_base_ = [
    'mmseg::_base_/models/deeplabv3plus_r50-d8.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    './_base_/schedules/disalign-stage2_4k.py',
]
custom_imports = dict(imports=['mmdisalign.seg'], allow_failed_imports=False)

load_from = 'checkpoints/deeplabv3plus_r50-d8_512x512_160k_ade20k_20200615_124504-6135c7e0.pth'  # noqa: E501
class_freq = 'data/ade/ADEChallengeData2016/ade20k_train_pixel_freq.json'
num_classes = 150
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)

model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,  # every weight comes from load_from
    decode_head=dict(
        type='DisAlignDepthwiseSeparableASPPHead',
        num_classes=num_classes,
        confidence='reference',
        loss_decode=dict(
            _delete_=True,
            type='GRWCrossEntropyLoss',
            class_freq=class_freq,
            num_classes=num_classes,
            rho=0.2,
            avg_mode='pixel',
            loss_weight=1.0)),
    auxiliary_head=dict(
        num_classes=num_classes, loss_decode=dict(loss_weight=0.0)))

val_evaluator = dict(
    type='HeadBodyTailIoUMetric', class_freq=class_freq, iou_metrics=['mIoU'])
test_evaluator = val_evaluator
