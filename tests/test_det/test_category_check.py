"""DisAlignCategoryCheckHook: annotation files, evaluator, frequency file
and model must agree on the categories; clear errors otherwise."""
import json
from types import SimpleNamespace

import pytest
import torch.nn as nn
from mmdet.datasets import LVISV1Dataset
from mmdet.evaluation import LVISMetric
from mmdet.registry import HOOKS, MODELS
from mmengine.registry import init_default_scope

from mmdisalign.det import DisAlignCategoryCheckHook, dataset_category_ids
from mmdisalign.utils.class_freq import save_class_freq


@pytest.fixture(autouse=True)
def _mmdet_scope():
    """Every test here builds in the mmdet scope (tests/conftest.py clears
    the default scope around each test)."""
    init_default_scope('mmdet')


def lvis_file(path, cat_ids, names=None):
    """One image with one instance per category, LVIS v1 fields."""
    names = names or [f'c{i}' for i in cat_ids]
    data = dict(
        images=[
            dict(
                id=1,
                width=16,
                height=16,
                coco_url='1.png',
                neg_category_ids=[],
                not_exhaustive_category_ids=[])
        ],
        annotations=[
            dict(
                id=k + 1,
                image_id=1,
                category_id=c,
                bbox=[0, 0, 4, 4],
                area=16,
                segmentation=[[0, 0, 4, 0, 4, 4, 0, 4]])
            for k, c in enumerate(cat_ids)
        ],
        categories=[
            dict(id=c, name=n, frequency='r', image_count=1, instance_count=1)
            for c, n in zip(cat_ids, names)
        ])
    path.write_text(json.dumps(data))
    return str(path)


def dataset(ann_file, num_names):
    return LVISV1Dataset(
        ann_file=ann_file,
        data_prefix=dict(img=''),
        metainfo=dict(classes=tuple(f'n{i}' for i in range(num_names))),
        pipeline=[])


def model(num_classes, freq_file=None):
    loss = dict(type='CrossEntropyLoss', use_sigmoid=False)
    if freq_file:
        loss = dict(
            type='GRWCrossEntropyLoss',
            class_freq=freq_file,
            rho=0.8,
            with_background=True)
    return nn.ModuleDict(
        dict(
            bbox=MODELS.build(
                dict(
                    type='DisAlignShared2FCBBoxHead',
                    in_channels=2,
                    roi_feat_size=1,
                    fc_out_channels=4,
                    num_classes=num_classes,
                    loss_cls=loss)),
            mask=MODELS.build(
                dict(
                    type='FCNMaskHead',
                    num_convs=1,
                    in_channels=2,
                    conv_out_channels=2,
                    num_classes=num_classes))))


def runner(net, train, val=None, metric=None):
    val_loop = None
    if val is not None:
        val_loop = SimpleNamespace(
            dataloader=SimpleNamespace(dataset=val),
            evaluator=SimpleNamespace(metrics=[metric] if metric else []))
    return SimpleNamespace(
        model=net,
        train_dataloader=SimpleNamespace(dataset=train),
        val_loop=val_loop,
        test_loop=val_loop)


@pytest.fixture
def files(tmp_path):
    ids = [2, 5, 9]
    freq = str(tmp_path / 'freq.json')
    save_class_freq(
        freq, [3, 2, 1],
        classes=['c2', 'c5', 'c9'],
        extra=dict(category_ids=ids))
    return dict(
        ids=ids,
        train=lvis_file(tmp_path / 'train.json', ids),
        val=lvis_file(tmp_path / 'val.json', ids),
        freq=freq,
        tmp=tmp_path)


def test_consistent_run_passes(files):
    hook = HOOKS.build(dict(type='DisAlignCategoryCheckHook'))
    assert isinstance(hook, DisAlignCategoryCheckHook)
    train = dataset(files['train'], 3)
    assert dataset_category_ids(train) == [2, 5, 9]
    run = runner(
        model(3, files['freq']), train, dataset(files['val'], 3),
        LVISMetric(ann_file=files['val'], metric=['bbox']))
    hook.before_train(run)
    hook.before_val(run)
    hook.before_test(run)
    assert hook._checked == {'train', 'val', 'test'}


def test_annotation_file_with_more_categories(files):
    ann = lvis_file(files['tmp'] / 'more.json', [2, 5, 9, 11])
    run = runner(model(3), dataset(ann, 4))
    with pytest.raises(
            ValueError,
            match=r"more\.json'\) has 4 categories, "
            r'but the model predicts another number of classes: '
            r'bbox \(num_classes=3\), mask \(num_classes=3\)'):
        DisAlignCategoryCheckHook().before_train(run)


def test_one_stage_head_of_another_class_count(files):
    """A RetinaNet-style dense head is checked; an RPN (objectness only)
    is not."""
    dense = dict(
        type='DisAlignRetinaHead',
        in_channels=2,
        feat_channels=2,
        stacked_convs=0,
        loss_cls=dict(type='FocalLoss', use_sigmoid=True))
    net = nn.ModuleDict(
        dict(
            rpn=MODELS.build(
                dict(type='RPNHead', in_channels=2, feat_channels=2)),
            dense=MODELS.build(dict(dense, num_classes=3))))
    DisAlignCategoryCheckHook().before_train(
        runner(net, dataset(files['train'], 3)))
    net['dense'] = MODELS.build(dict(dense, num_classes=4))
    with pytest.raises(
            ValueError,
            match=r'has 3 categories, but the model predicts another '
            r'number of classes: dense \(num_classes=4\)\. '):
        DisAlignCategoryCheckHook().before_train(
            runner(net, dataset(files['train'], 3)))


def test_metainfo_names_another_number_of_classes(files):
    run = runner(model(3), dataset(files['train'], 1203))
    with pytest.raises(
            ValueError,
            match=r'has 3 categories but its '
            r'metainfo names 1203 classes'):
        DisAlignCategoryCheckHook().before_train(run)
    DisAlignCategoryCheckHook(check_metainfo=False).before_train(run)


def test_frequency_file_of_another_category_set(files):
    other = str(files['tmp'] / 'other_freq.json')
    save_class_freq(other, [3, 2, 1], extra=dict(category_ids=[2, 5, 10]))
    run = runner(model(3, other), dataset(files['train'], 3))
    with pytest.raises(
            ValueError,
            match=r"other_freq\.json' \(used by "
            r'bbox\.loss_cls\) was written for another category '
            r'set .*label 2 is category id 10 in one and 9'):
        DisAlignCategoryCheckHook().before_train(run)
    # Without ids, the class names are compared.
    names = str(files['tmp'] / 'names_freq.json')
    save_class_freq(names, [3, 2, 1], classes=['n0', 'x', 'n2'])
    run = runner(model(3, names), dataset(files['train'], 3))
    with pytest.raises(
            ValueError,
            match=r"class 1 is 'n1' in the train dataset .* but 'x' in the "
            r"class-frequency file '.*names_freq\.json' \(used by "
            r'bbox\.loss_cls\)'):
        DisAlignCategoryCheckHook().before_train(run)


def test_validation_file_and_metric_must_match(files):
    other = lvis_file(files['tmp'] / 'val_other.json', [2, 5, 8])
    run = runner(model(3), dataset(files['train'], 3), dataset(other, 3))
    with pytest.raises(
            ValueError,
            match=r'val dataset .*val_other\.json.* '
            r'and the train dataset .* list different categories '
            r'\(label 2 is category id 9 in one and 8'):
        DisAlignCategoryCheckHook().before_train(run)
    run = runner(
        model(3), dataset(files['train'], 3), dataset(files['val'], 3),
        LVISMetric(ann_file=other, metric=['bbox']))
    with pytest.raises(
            ValueError,
            match=r'LVISMetric evaluates against an '
            r'ann_file whose categories differ'):
        DisAlignCategoryCheckHook().before_train(run)
