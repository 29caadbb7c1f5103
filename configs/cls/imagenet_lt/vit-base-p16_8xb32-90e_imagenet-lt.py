# Stage 1 on ImageNet-LT with ViT-B/16 (mmpretrain's VisionTransformer,
# arch 'b', patch 16, 224 px) and its VisionTransformerClsHead with the
# hidden layer of mmpretrain's ImageNet recipe (hidden_dim 3072, Tanh),
# trained from scratch with instance-balanced sampling and the ImageNet-LT
# data of the ResNet configs (../_base_/datasets/imagenet-lt_bs32.py).
# The reference released no ViT config; we chose mmpretrain's ViT-B/16
# recipe (vit-base-p16_64xb64_in1k.py: AdamW, weight decay 0.3 except
# cls_token / pos_embed, label smoothing 0.1, Mixup 0.2, gradient clipping
# 1.0, linear warm-up over the first tenth, cosine) at the ImageNet-LT
# batch of 256 (8 GPUs x 32; lr 0.003 for 4096 scaled linearly) and the
# reference stage-1 length of 90 epochs.
_base_ = [
    'mmpretrain::_base_/models/vit-base-p16.py',
    '../_base_/datasets/imagenet-lt_bs32.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmdisalign.cls'], allow_failed_imports=False)

model = dict(
    head=dict(num_classes=1000, hidden_dim=3072, topk=(1, 5)),
    train_cfg=dict(augments=dict(type='Mixup', alpha=0.2)))

optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=0.003 * 256 / 4096, weight_decay=0.3),
    paramwise_cfg=dict(custom_keys={
        '.cls_token': dict(decay_mult=0.0),
        '.pos_embed': dict(decay_mult=0.0)
    }),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=9,
        convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=9, end=90, T_max=81)
]
train_cfg = dict(by_epoch=True, max_epochs=90, val_interval=10)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=2))
