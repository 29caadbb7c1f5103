# Baseline LWS (learnable weight scaling, Kang et al. 2020) for DeepLabV3+
# R-50-D8 on ADE20K 512x512: the DisAlign stage 2
#   deeplabv3plus_r50-d8_8xb4-4k_ade20k-512x512_disalign.py
# (same frozen stage 1, schedule, GRW loss with rho 0.2 and hooks) with the
# LWS calibration in place of DisAlign's: zhat_j = (1 + alpha_j) z_j per
# pixel, alpha starts at 0, only alpha trained (the paper's Table 2 special
# case sigma = 1, beta = 0; pixels cannot be re-sampled class-balanced, so
# the re-weighted loss stays).
_base_ = './deeplabv3plus_r50-d8_8xb4-4k_ade20k-512x512_disalign.py'

model = dict(decode_head=dict(calibration=dict(type='LWSCalibration')))
