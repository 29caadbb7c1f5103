# DisAlign stage 2 for DeepLabV3+ R-101-D8 on ADE20K 512x512; stage 1 is
#   mmseg::deeplabv3plus/deeplabv3plus_r101-d8_4xb4-160k_ade20k-512x512.py
# (upstream: the R-50 config with depth 101), checkpoint
#   https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3plus/deeplabv3plus_r101-d8_512x512_160k_ade20k/deeplabv3plus_r101-d8_512x512_160k_ade20k_20200615_123232-38ed86bb.pth  # noqa: E501
_base_ = './deeplabv3plus_r50-d8_8xb4-4k_ade20k-512x512_disalign.py'

load_from = 'checkpoints/deeplabv3plus_r101-d8_512x512_160k_ade20k_20200615_123232-38ed86bb.pth'  # noqa: E501
model = dict(backbone=dict(depth=101))
