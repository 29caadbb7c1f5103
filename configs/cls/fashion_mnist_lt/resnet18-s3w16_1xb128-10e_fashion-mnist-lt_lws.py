# Baseline LWS (learnable weight scaling, Kang et al. 2020) on the same
# frozen Fashion-MNIST-LT stage 1 as DisAlign: logits rescaled per class,
# zhat_j = (1 + alpha_j) z_j (alpha starts at 0: the stage-1 model), only
# alpha trained, with cross-entropy and class-balanced sampling, on the
# DisAlign stage-2 schedule: the DisAlign stage-2 config with the LWS
# calibration in place of DisAlign's, the stage-1 loss in place of GRW and
# class-balanced sampling.
# Train:  python tools/train.py CONFIG
_base_ = './resnet18-s3w16_1xb128-10e_fashion-mnist-lt_disalign.py'

model = dict(
    head=dict(
        calibration=dict(_delete_=True, type='LWSCalibration'),
        loss=dict(_delete_=True, type='CrossEntropyLoss', loss_weight=1.0)))

train_dataloader = dict(
    sampler=dict(_delete_=True, type='ClassBalancedSampler'))
