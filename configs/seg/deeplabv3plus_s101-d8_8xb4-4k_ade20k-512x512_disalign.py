# DisAlign stage 2 for DeepLabV3+ ResNeSt-101 (S-101-D8) on ADE20K 512x512;
# stage 1 is
#   mmseg::resnest/resnest_s101-d8_deeplabv3plus_4xb4-160k_ade20k-512x512.py
# (upstream: the DeepLabV3+ R-101 config with a ResNeSt backbone),
# checkpoint
#   https://download.openmmlab.com/mmsegmentation/v0.5/resnest/deeplabv3plus_s101-d8_512x512_160k_ade20k/deeplabv3plus_s101-d8_512x512_160k_ade20k_20200807_144503-27b26226.pth  # noqa: E501
_base_ = './deeplabv3plus_r101-d8_8xb4-4k_ade20k-512x512_disalign.py'

load_from = 'checkpoints/deeplabv3plus_s101-d8_512x512_160k_ade20k_20200807_144503-27b26226.pth'  # noqa: E501
model = dict(
    backbone=dict(
        type='ResNeSt',
        stem_channels=128,
        radix=2,
        reduction_factor=4,
        avg_down_stride=True))
