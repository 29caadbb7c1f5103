# Stage 1 on iNaturalist 2018 (8142 classes, 437.5K training images):
# ResNet-50 from scratch, linear head, instance-balanced sampling.
# The reference released no iNaturalist config; we chose the ImageNet-LT
# stage-1 recipe (90 epochs as in the paper's iNaturalist row, SGD lr 0.1
# momentum 0.9, wd 5e-4, batch 256, cosine LR per epoch, same
# augmentation) so that the only change between datasets is the data:
# this config is the ImageNet-LT one with the iNaturalist data.
# Layout (the official 2018 release, paths in the JSON are relative to it):
#   data/inaturalist2018/train_val2018/<kingdom>/<id>/<image>.jpg
#   data/inaturalist2018/train2018.json, val2018.json
# Class-frequency JSON (GRW loss of stage 2, many/medium/few split):
#   python tools/analysis_tools/class_freq_cls.py \
#       --config configs/cls/inaturalist2018/resnet50_8xb32-90e_inat2018.py \
#       --out data/inaturalist2018/inat2018_class_freq.json
_base_ = '../imagenet_lt/resnet50_8xb32-90e_imagenet-lt.py'

data_root = 'data/inaturalist2018/'
num_classes = 8142
model = dict(head=dict(num_classes=num_classes))
data_preprocessor = dict(num_classes=num_classes)

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='INaturalist2018',
        data_root=data_root,
        ann_file='train2018.json',
        pipeline={{_base_.train_pipeline}}))
# iNaturalist 2018 has no separate test labels: val2018.json is the
# reported split (3 images per class).
val_dataloader = dict(
    dataset=dict(
        train_dataloader['dataset'],
        ann_file='val2018.json',
        test_mode=True,
        pipeline={{_base_.test_pipeline}}))
val_evaluator = dict(
    _delete_=True,
    type='LongTailAccuracy',
    class_freq=data_root + 'inat2018_class_freq.json',
    num_classes=num_classes,
    many_thr=100,
    few_thr=20)
test_dataloader = val_dataloader
test_evaluator = val_evaluator
