# Toy baseline LWS (learnable weight scaling, Kang et al. 2020) on the same
# frozen stage 1 as the DisAlign toy
#   mask-rcnn_r18-w16_fpn_1xb2-500_fmnist-lvis_disalign.py
# whose stage 2 it is with the LWS calibration in place of DisAlign's:
# zhat_j = (1 + alpha_j) z_j for the foreground logits of the box head
# (alpha starts at 0: the stage-1 model; the background logit passes
# unchanged), only alpha trained. RoIs cannot be re-sampled class-balanced,
# so LWS keeps DisAlign's re-weighted loss (GRW, rho 0.8): the two differ
# only in the calibration (the paper's Table 2 special case sigma = 1,
# beta = 0). Train:  python tools/train.py CONFIG
_base_ = './mask-rcnn_r18-w16_fpn_1xb2-500_fmnist-lvis_disalign.py'

model = dict(
    roi_head=dict(
        bbox_head=dict(
            calibration=dict(_delete_=True, type='LWSCalibration'))))
