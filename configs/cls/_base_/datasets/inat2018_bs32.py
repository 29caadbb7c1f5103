# iNaturalist 2018 (8142 classes, 437.5K training images) with the
# ImageNet-LT settings of imagenet-lt_bs32.py (augmentation, 8 GPUs x 32
# images, many / medium / few at 100 / 20 training images): the reference
# released no iNaturalist config, so that the only change between the two
# datasets is the data.
# Layout (the official 2018 release, paths in the JSON are relative to it):
#   data/inaturalist2018/train_val2018/<kingdom>/<id>/<image>.jpg
#   data/inaturalist2018/train2018.json, val2018.json
# Class-frequency JSON (GRW loss of stage 2, many/medium/few split):
#   python tools/analysis_tools/class_freq_cls.py \
#       --config configs/cls/inaturalist2018/resnet50_8xb32-90e_inat2018.py \
#       --out data/inaturalist2018/inat2018_class_freq.json
_base_ = './imagenet-lt_bs32.py'

data_root = 'data/inaturalist2018/'
num_classes = 8142
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
# No held-out validation list (val2018.json is the reported split):
# tools/tune_calibration.py needs --val-ann-file (e.g. a list split off
# train2018.json, with stage 1 trained on the rest).
tuning_ann_file = None
