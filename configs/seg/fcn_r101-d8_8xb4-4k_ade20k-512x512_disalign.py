# DisAlign stage 2 for FCN R-101-D8 on ADE20K 512x512; stage 1 is
#   mmseg::fcn/fcn_r101-d8_4xb4-160k_ade20k-512x512.py
# (upstream: the R-50 config with depth 101), checkpoint
#   https://download.openmmlab.com/mmsegmentation/v0.5/fcn/fcn_r101-d8_512x512_160k_ade20k/fcn_r101-d8_512x512_160k_ade20k_20200615_105816-fd192bd5.pth  # noqa: E501
_base_ = './fcn_r50-d8_8xb4-4k_ade20k-512x512_disalign.py'

load_from = 'checkpoints/fcn_r101-d8_512x512_160k_ade20k_20200615_105816-fd192bd5.pth'  # noqa: E501
model = dict(backbone=dict(depth=101))
