# Places-LT (365 classes, 62.5K training images) with the ImageNet-LT
# settings of imagenet-lt_bs32.py (augmentation, 8 GPUs x 32 images,
# many / medium / few at 100 / 20 training images).
# Layout (Places365-Standard images, OLTR's split lists):
#   data/places365/<paths as in the lists>
#   data/places365/Places_LT_{train,val,test}.txt
# Class-frequency JSON:
#   python tools/analysis_tools/class_freq_cls.py \
#       --ann-file data/places365/Places_LT_train.txt --num-classes 365 \
#       --out data/places365/places_lt_class_freq.json
_base_ = './imagenet-lt_bs32.py'

data_root = 'data/places365/'
num_classes = 365
data_preprocessor = dict(num_classes=num_classes)
train_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file='Places_LT_train.txt',
        num_classes=num_classes))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file='Places_LT_val.txt',
        num_classes=num_classes))
test_dataloader = dict(
    dataset=dict(val_dataloader['dataset'], ann_file='Places_LT_test.txt'))
val_evaluator = dict(
    data_root=data_root,
    train_ann_file='Places_LT_train.txt',
    num_classes=num_classes)
test_evaluator = val_evaluator
# Tuning (tools/tune_calibration.py) reads the validation list (20 images
# per class), never the test list.
tuning_ann_file = 'Places_LT_val.txt'
