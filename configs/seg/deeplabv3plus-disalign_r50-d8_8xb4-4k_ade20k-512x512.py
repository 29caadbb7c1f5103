# DisAlign stage 2 for DeepLabV3+ R-50-D8 on ADE20K 512x512.
#
# Stage 1 is the upstream mmseg model of the _base_ config: train it with
# that config, or download its checkpoint (mmseg model zoo)
#   https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3plus/deeplabv3plus_r50-d8_512x512_160k_ade20k/deeplabv3plus_r50-d8_512x512_160k_ade20k_20200615_124504-6135c7e0.pth  # noqa: E501
# and point load_from at the local file. Nothing is downloaded at run time.
# The class-frequency file comes from tools/analysis_tools/seg_pixel_freq.py.
# Stage 2 as in fcn-disalign_r50-d8_8xb4-4k_ade20k-512x512.py (reference
# schedule: 4000 iterations, SGD lr 0.01, momentum 0.9, wd 5e-4, poly LR,
# 8 GPUs x 4 images, GRW rho 0.2 over all pixels, auxiliary loss weight 0).
_base_ = 'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-160k_ade20k-512x512.py'  # noqa: E501
custom_imports = dict(imports=['mmdisalign.seg'], allow_failed_imports=False)

load_from = 'checkpoints/deeplabv3plus_r50-d8_512x512_160k_ade20k_20200615_124504-6135c7e0.pth'  # noqa: E501
class_freq = 'data/ade/ADEChallengeData2016/ade20k_train_pixel_freq.json'
num_classes = 150

model = dict(
    pretrained=None,  # every weight comes from load_from
    decode_head=dict(
        type='DisAlignDepthwiseSeparableASPPHead',
        confidence='reference',
        loss_decode=dict(
            _delete_=True,
            type='GRWCrossEntropyLoss',
            class_freq=class_freq,
            num_classes=num_classes,
            rho=0.2,
            avg_mode='pixel',
            loss_weight=1.0)),
    auxiliary_head=dict(loss_decode=dict(loss_weight=0.0)))

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0005))
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=1e-4,
        power=0.9,
        begin=0,
        end=4000,
        by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=4000, val_interval=800)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=800))
# Stage-2 fast path (mmdisalign.engine.stage2_fastpath): frozen backbone
# and neck under no_grad, the frozen auxiliary head skipped; the same
# gradients for the calibration.
custom_hooks = [
    dict(type='DisAlignFreezeHook'),
    dict(type='DisAlignStage2FastPathHook')
]

val_evaluator = dict(
    type='HeadBodyTailIoUMetric',
    class_freq=class_freq,
    iou_metrics=['mIoU'])
test_evaluator = val_evaluator
