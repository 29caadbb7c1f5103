# Baseline tau-normalisation (Kang et al. 2020) for FCN R-50-D8
# on ADE20K 512x512: the upstream stage-1 model
#   mmseg::fcn/fcn_r50-d8_4xb4-160k_ade20k-512x512.py
# with per-pixel zhat_j = z_j / ||w_j||^tau (w_j: the row of class j of the
# decode head's conv_seg), tau 1, nothing trained. It is evaluated, not
# trained: download the stage-1 checkpoint (mmseg model zoo)
#   https://download.openmmlab.com/mmsegmentation/v0.5/fcn/fcn_r50-d8_512x512_160k_ade20k/fcn_r50-d8_512x512_160k_ade20k_20200615_100713-4edbc3b4.pth  # noqa: E501
# and test it (it loads without renaming; the calibration has no weights):
#   python tools/test.py CONFIG \
#       checkpoints/fcn_r50-d8_512x512_160k_ade20k_20200615_100713-4edbc3b4.pth
# Head / body / tail mIoU as in the DisAlign configs (class-frequency file
# from tools/analysis_tools/seg_pixel_freq.py).
_base_ = 'mmseg::fcn/fcn_r50-d8_4xb4-160k_ade20k-512x512.py'
custom_imports = dict(imports=['mmdisalign.seg'], allow_failed_imports=False)

load_from = 'checkpoints/fcn_r50-d8_512x512_160k_ade20k_20200615_100713-4edbc3b4.pth'  # noqa: E501
class_freq = 'data/ade/ADEChallengeData2016/ade20k_train_pixel_freq.json'

model = dict(
    pretrained=None,  # every weight comes from the checkpoint
    decode_head=dict(
        type='DisAlignFCNHead',
        calibration=dict(type='TauNormCalibration', tau=1.0)))

val_evaluator = dict(
    type='HeadBodyTailIoUMetric', class_freq=class_freq, iou_metrics=['mIoU'])
test_evaluator = val_evaluator
