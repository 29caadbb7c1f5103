"""The config naming scheme of configs/README.md, for every shipped config.

``{model}_{gpus}xb{batch}[-{schedule}]_{dataset}[_{method}].py`` in the
three tasks; basenames unique under configs/ (mim finds a config by its
basename); and each name says what the config is: its batch, schedule,
dataset, whether the classifier is a cosine one, and the method (stage 1,
DisAlign stage 2 or a baseline) all match the resolved config.
"""
import ast
import glob
import importlib.util
import os.path as osp
import re

import pytest
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(REPO, 'configs')
ALL_FILES = sorted(glob.glob(osp.join(CONFIGS, '**', '*.py'), recursive=True))
SHIPPED = [p for p in ALL_FILES if '_base_' not in p.split(osp.sep)]
# The documented short name (README): a file that only inherits the
# canonical config.
ALIASES = {
    'seg/deeplabv3plus_r101_ade20k_disalign.py':
    'seg/deeplabv3plus_r101-d8_8xb4-4k_ade20k-512x512_disalign.py',
}
NAME = re.compile(
    r'(?P<model>[a-z0-9.-]+(?:_[a-z0-9.-]+)*?)'
    r'_(?P<gpus>\d+)xb(?P<batch>\d+)'
    r'(?:-(?P<schedule>[a-z0-9.-]+))?'
    r'_(?P<dataset>[a-z0-9.-]+)'
    r'(?:_(?P<method>disalign(?:-cached)?|crt|lws|tau-norm|logit-adjust))?'
    r'\.py')
DATASETS = {
    'cls': ('fashion-mnist-lt', 'imagenet-lt', 'inat2018', 'places-lt'),
    'seg': ('ade20k-512x512', 'fmnist-scenes-64x64'),
    'det': ('lvis-v0.5', 'lvis-v1', 'fmnist-lvis'),
}
UPSTREAM = {'cls': 'mmpretrain', 'seg': 'mmseg', 'det': 'mmdet'}
# Calibration type -> the method field of a config that uses it.
CALIBRATION_METHOD = {
    'DisAlignCalibration': 'disalign',
    'LWSCalibration': 'lws',
    'TauNormCalibration': 'tau-norm',
    'LogitAdjustCalibration': 'logit-adjust',
}


def rel(path):
    return osp.relpath(path, CONFIGS).replace(osp.sep, '/')


def task_of(path):
    return rel(path).split('/')[0]


def walk(node):
    """Every dict in a config tree."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from walk(value)


def test_basenames_are_unique():
    names = [osp.basename(p) for p in ALL_FILES]
    assert len(SHIPPED) == 82
    assert sorted(n for n in set(names) if names.count(n) > 1) == []


@pytest.mark.parametrize('path', SHIPPED, ids=rel)
def test_name_follows_the_scheme(path):
    name = rel(path)
    if name in ALIASES:
        # Nothing but `_base_ = './<canonical name>'`.
        with open(path) as f:
            tree = ast.parse(f.read())
        expected = f"_base_ = './{osp.basename(ALIASES[name])}'"
        assert [ast.unparse(node) for node in tree.body] == [expected]
        assert NAME.fullmatch(osp.basename(ALIASES[name]))
        return
    match = NAME.fullmatch(osp.basename(path))
    assert match, name
    assert match['dataset'] in DATASETS[task_of(path)], name
    fields = match['model'].split('_')
    # The cosine classifier is the last model field, nowhere else.
    assert 'cosine' not in fields[:-1], name


@pytest.mark.parametrize('path', SHIPPED, ids=rel)
def test_name_says_what_the_config_is(path):
    if importlib.util.find_spec(UPSTREAM[task_of(path)]) is None:
        pytest.skip(f'{UPSTREAM[task_of(path)]} is not installed')
    name = osp.basename(ALIASES.get(rel(path), path))
    match = NAME.fullmatch(name)
    cfg = Config.fromfile(path, import_custom_modules=False).to_dict()
    nodes = list(walk(cfg['model']))

    assert cfg['train_dataloader']['batch_size'] == int(match['batch'])
    if match['schedule']:
        length = match['schedule'].split('-')[-1]
        train = cfg['train_cfg']
        if length.endswith('e'):
            assert train['by_epoch'] and train['max_epochs'] == int(
                length[:-1])
        else:
            iters = float(length[:-1]) * 1000 if length.endswith('k') else (
                int(length))
            assert train['max_iters'] == iters

    cosine = any(
        node.get('type') in ('CosineClsHead', 'DisAlignCosineClsHead') or (
            node.get('cls_predictor_cfg') or {}).get('type') == 'NormedLinear'
        for node in nodes)
    assert cosine == ('cosine' in match['model'].split('_'))

    calibrations = set()
    for node in nodes:
        if node.get('calibration'):
            calibrations.add(node['calibration']['type'])
        elif re.fullmatch(r'DisAlign\w*Head', str(node.get('type'))):
            calibrations.add('DisAlignCalibration')  # the heads' default
    freeze = [
        hook for hook in cfg.get('custom_hooks') or []
        if hook['type'] == 'DisAlignFreezeHook'
    ]
    if calibrations:
        [calibration] = calibrations
        method = CALIBRATION_METHOD[calibration]
        # Trained calibrations come with the freeze hook, post-hoc ones not.
        assert bool(freeze) == (method in ('disalign', 'lws'))
    elif freeze:
        # cRT: no calibration; the hook re-initialises the classifier.
        assert freeze[0].get('reinit')
        method = 'crt'
    else:
        method = None  # stage 1: plain training
    if cfg['model'].get('type') == 'CachedFeatureClassifier':
        method += '-cached'  # stage 2 on features cached from stage 1
    assert match['method'] == method
