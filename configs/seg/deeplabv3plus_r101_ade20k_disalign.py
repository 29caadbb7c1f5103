# Short name of deeplabv3plus-disalign_r101-d8_8xb4-4k_ade20k-512x512.py:
# DisAlign stage 2 for DeepLabV3+ R-101-D8 on ADE20K 512x512.
_base_ = './deeplabv3plus-disalign_r101-d8_8xb4-4k_ade20k-512x512.py'
