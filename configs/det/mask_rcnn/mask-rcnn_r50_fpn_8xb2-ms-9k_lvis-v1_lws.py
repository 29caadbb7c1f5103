# Baseline LWS (learnable weight scaling, Kang et al. 2020) for Mask R-CNN
# R-50-FPN on LVIS v1: the DisAlign stage 2
#   mask-rcnn_r50_fpn_8xb2-ms-9k_lvis-v1_disalign.py
# (same frozen stage 1, schedule, GRW loss with rho 0.8 and hooks) with the
# LWS calibration in place of DisAlign's: zhat_j = (1 + alpha_j) z_j for
# the 1203 foreground logits of the box head, alpha starts at 0, the
# background logit unchanged, only alpha trained (the paper's Table 2
# special case sigma = 1, beta = 0; RoIs cannot be re-sampled
# class-balanced, so the re-weighted loss stays).
_base_ = './mask-rcnn_r50_fpn_8xb2-ms-9k_lvis-v1_disalign.py'

model = dict(
    roi_head=dict(
        bbox_head=dict(
            calibration=dict(_delete_=True, type='LWSCalibration'))))
