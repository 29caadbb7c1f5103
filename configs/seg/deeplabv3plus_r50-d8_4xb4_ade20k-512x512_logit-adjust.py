# Baseline post-hoc logit adjustment (Menon et al. 2021) for DeepLabV3+
# R-50-D8 on ADE20K 512x512: the upstream stage-1 model
#   mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-160k_ade20k-512x512.py
# with per-pixel zhat_j = z_j - tau log(n_j / n) (n_j: the training pixels
# of class j in the class-frequency file), tau 1, nothing trained. It is
# evaluated, not trained: download the stage-1 checkpoint (mmseg model zoo)
#   https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3plus/deeplabv3plus_r50-d8_512x512_160k_ade20k/deeplabv3plus_r50-d8_512x512_160k_ade20k_20200615_124504-6135c7e0.pth  # noqa: E501
# and test it (it loads without renaming):
#   python tools/test.py CONFIG \
#       checkpoints/deeplabv3plus_r50-d8_512x512_160k_ade20k_20200615_124504-6135c7e0.pth
# Head / body / tail mIoU as in the DisAlign configs (class-frequency file
# from tools/analysis_tools/seg_pixel_freq.py).
_base_ = 'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-160k_ade20k-512x512.py'  # noqa: E501
custom_imports = dict(imports=['mmdisalign.seg'], allow_failed_imports=False)

load_from = 'checkpoints/deeplabv3plus_r50-d8_512x512_160k_ade20k_20200615_124504-6135c7e0.pth'  # noqa: E501
class_freq = 'data/ade/ADEChallengeData2016/ade20k_train_pixel_freq.json'

model = dict(
    pretrained=None,  # every weight comes from the checkpoint
    decode_head=dict(
        type='DisAlignDepthwiseSeparableASPPHead',
        calibration=dict(
            type='LogitAdjustCalibration', class_freq=class_freq, tau=1.0)))

val_evaluator = dict(
    type='HeadBodyTailIoUMetric', class_freq=class_freq, iou_metrics=['mIoU'])
test_evaluator = val_evaluator
