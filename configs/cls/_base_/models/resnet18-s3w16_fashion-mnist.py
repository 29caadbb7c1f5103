# A small CIFAR-style ResNet-18 for the 28x28 grey Fashion-MNIST images
# (3 stages, 16 base channels, 64-d feature; about 0.3M parameters) with
# mmpretrain's plain linear head over the 10 classes.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet_CIFAR',
        depth=18,
        num_stages=3,
        in_channels=1,
        stem_channels=16,
        base_channels=16,
        strides=(2, 2, 2),
        dilations=(1, 1, 1),
        out_indices=(2, ),
        style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
