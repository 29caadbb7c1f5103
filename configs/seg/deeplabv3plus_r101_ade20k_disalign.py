# The documented short name (README: ``mim train mmdisalign
# deeplabv3plus_r101_ade20k_disalign.py``) of the canonical
# deeplabv3plus_r101-d8_8xb4-4k_ade20k-512x512_disalign.py: DisAlign
# stage 2 for DeepLabV3+ R-101-D8 on ADE20K 512x512. It only inherits it
# (configs/README.md).
_base_ = './deeplabv3plus_r101-d8_8xb4-4k_ade20k-512x512_disalign.py'
