# Toy baseline LWS (learnable weight scaling, Kang et al. 2020) on the same
# frozen stage 1 as the DisAlign toy
#   fcn_r18-w16-d8_1xb4-400_fmnist-scenes-64x64_disalign.py
# whose stage 2 it is with the LWS calibration in place of DisAlign's:
# zhat_j = (1 + alpha_j) z_j per pixel (alpha starts at 0: the stage-1
# model), only alpha trained. Pixels cannot be re-sampled class-balanced,
# so LWS keeps DisAlign's re-weighted loss (GRW, rho 0.2): the two differ
# only in the calibration (the paper's Table 2 special case sigma = 1,
# beta = 0). Train:  python tools/train.py CONFIG
_base_ = './fcn_r18-w16-d8_1xb4-400_fmnist-scenes-64x64_disalign.py'

model = dict(decode_head=dict(calibration=dict(type='LWSCalibration')))
