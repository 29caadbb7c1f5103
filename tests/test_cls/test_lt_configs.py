"""Every shipped cls config runs through the Runner on fake data.

Stage-1 configs train one iteration; stage-2 configs (DisAlign, LWS, cRT)
load a real stage-1 checkpoint written by the test (so the freeze hook's
stage-1 check runs for real), train one iteration (the cached-feature
config on a fake feature cache of that stage 1), and only the
calibration (cRT: the classifier) may change; the eval-only baselines
(tau-norm, logit adjustment) run ``Runner.test`` and their scores are
checked against the closed forms. Also tests ``ClassBalancedSampler``.
"""
import copy
import glob
import os.path as osp
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from cache_features import FeatureCacheWriter
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmpretrain.registry import DATASETS, MODELS
from mmpretrain.structures import DataSample
from torch.utils.data import Dataset

import mmdisalign.cls  # noqa: F401
from mmdisalign.cls.datasets import ClassBalancedSampler, feature_fingerprint

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    p for p in glob.glob(
        osp.join(REPO, 'configs', 'cls', '**', '*.py'), recursive=True)
    if '_base_' not in p)
BY_NAME = {osp.splitext(osp.basename(p))[0]: p for p in CONFIGS}
EVAL_ONLY = ('TauNormCalibration', 'LogitAdjustCalibration')
# The classifier layer of a stage-1 head, where it is not ``fc``.
CLASSIFIER = {'VisionTransformerClsHead': 'head.layers.head.'}
# Stage-1 heads whose classifier starts at zero (upstream init): the first
# iteration gives the backbone no gradient (it trains from the second).
ZERO_INIT_CLASSIFIER = ('VisionTransformerClsHead', )


@DATASETS.register_module(force=True)
class _FakeLTImages(Dataset):
    """``n`` packed random images with labels ``0, 1, ..`` (mod K)."""

    def __init__(self, num_classes, channels, size, n=2, seed=0, **kwargs):
        g = torch.Generator().manual_seed(seed)
        self.images = (torch.rand(n, channels, size, size, generator=g) *
                       255).to(torch.uint8)
        self.labels = [i % num_classes for i in range(n)]
        self.metainfo = dict(classes=tuple(str(i) for i in range(num_classes)))

    def __len__(self):
        return len(self.labels)

    def get_gt_labels(self):
        return np.asarray(self.labels)

    def __getitem__(self, i):
        return dict(
            inputs=self.images[i],
            data_samples=DataSample().set_gt_label(self.labels[i]))


class _Snapshot(Hook):
    """Copy the model state right before the first training iteration."""
    priority = 'LOWEST'  # after the freeze hook

    def __init__(self):
        self.state = None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if self.state is None:
            self.state = {
                k: v.detach().clone()
                for k, v in runner.model.state_dict().items()
            }


def _num_classes(cfg):
    return cfg.model.head.num_classes


def _fake_counts(k):
    return [float(k + 5 - i) for i in range(k)]  # all distinct, positive


def _data_cfg(cfg, test_mode=False):
    channels = len(cfg.data_preprocessor.mean)
    # 1-channel 28x28 for Fashion-MNIST-LT; 64x64 RGB is enough for the
    # ImageNet-style ResNets (stride 32 -> 2x2 before pooling)
    size = 28 if channels == 1 else 64
    return dict(
        batch_size=2,
        num_workers=0,
        persistent_workers=False,
        dataset=dict(
            type='_FakeLTImages',
            num_classes=_num_classes(cfg),
            channels=channels,
            size=size,
            seed=int(test_mode)),
        sampler=dict(type='DefaultSampler', shuffle=False))


def _fake_cache(cfg, state, cache_dir, n=2):
    """A feature cache of the stage-1 weights ``state``: random features,
    their stage-1 logits, labels ``0, 1, ..`` (mod K)."""
    k, dim = _num_classes(cfg), cfg.model.head.in_channels
    feats = torch.rand(n, dim, generator=torch.Generator().manual_seed(0))
    logits = feats @ state['head.fc.weight'].T + state['head.fc.bias']
    writer = FeatureCacheWriter(str(cache_dir), n, dim, k)
    writer.write(0, range(n), feats, logits, [i % k for i in range(n)])
    sha1 = feature_fingerprint(SimpleNamespace(state_dict=lambda: state))
    writer.close(dict(feature_sha1=sha1))
    return str(cache_dir)


def _fix_class_freq(head_cfg, k):
    for key in ('loss', 'calibration'):
        sub = head_cfg.get(key) or {}
        if 'class_freq' in sub:
            sub['class_freq'] = _fake_counts(k)


def _load_cfg(path, work_dir):
    cfg = Config.fromfile(path)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = osp.basename(path)[:-3] + f'_{id(cfg)}'
    cfg.log_level = 'WARNING'
    k = _num_classes(cfg)
    _fix_class_freq(cfg.model.head, k)
    cfg.default_hooks.checkpoint = None
    cfg.visualizer = dict(type='UniversalVisualizer', vis_backends=[])
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    return cfg


def _stage1_name(cfg):
    """The stage-1 config this config's ``load_from`` points at."""
    m = re.match(r'work_dirs/([^/]+)/epoch_\d+\.pth$',
                 cfg.get('load_from') or '')
    return m.group(1) if m else None


@pytest.fixture(scope='module')
def stage1_ckpts(tmp_path_factory):
    """Stage-1 checkpoints (randomly initialised models), made on demand."""
    root = tmp_path_factory.mktemp('stage1')
    cache = {}

    def get(name):
        if name not in cache:
            assert name in BY_NAME, f'load_from names unknown config {name}'
            cfg = Config.fromfile(BY_NAME[name])
            assert _stage1_name(cfg) is None
            model_cfg = cfg.model.copy()
            _fix_class_freq(model_cfg.head, _num_classes(cfg))
            model = MODELS.build(model_cfg)
            model.init_weights()
            path = str(root / f'{name}.pth')
            state = {k: v.clone() for k, v in model.state_dict().items()}
            torch.save(dict(state_dict=state, meta=dict(epoch=1)), path)
            cache[name] = (path, state)
        return cache[name]

    return get


def _changed(before, after):
    return sorted(
        k for k, v in after.items()
        if v.dtype.is_floating_point and not torch.equal(v, before[k]))


def _run_eval_only(cfg, path, ckpt, state):
    k = _num_classes(cfg)
    cfg.load_from = ckpt
    cfg.train_dataloader = cfg.train_cfg = cfg.optim_wrapper = None
    cfg.param_scheduler = None
    cfg.test_dataloader = _data_cfg(cfg, test_mode=True)
    cfg.test_cfg = dict()
    cfg.test_evaluator = dict(
        type='LongTailAccuracy',
        class_freq=_fake_counts(k),
        num_classes=k,
        many_thr=k + 3.5,
        few_thr=k + 1.5)
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    assert any('top1' in key for key in metrics), metrics
    model = runner.model.eval()
    # the stage-1 weights were loaded into the calibrated head
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key], value), key
    ds = DATASETS.build(cfg.test_dataloader.dataset)
    batch = model.data_preprocessor(
        dict(
            inputs=[ds[i]['inputs'] for i in range(len(ds))],
            data_samples=[ds[i]['data_samples'] for i in range(len(ds))]))
    with torch.no_grad():
        feats = model.extract_feat(batch['inputs'])
        head = model.head
        z = head.fc(head.pre_logits(feats))
        got = head(feats)
    counts = torch.tensor(_fake_counts(k), dtype=torch.float64)
    if cfg.model.head.calibration.type == 'TauNormCalibration':
        expected = z / head.fc.weight.norm(dim=1)
    else:
        expected = z - torch.log(counts / counts.sum()).float()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_runs_one_iteration(path, tmp_path, stage1_ckpts):
    cfg = _load_cfg(path, tmp_path)
    head = cfg.model.head
    calib = (head.get('calibration') or {}).get('type')
    stage1 = _stage1_name(cfg)
    ckpt, state = stage1_ckpts(stage1) if stage1 else (None, None)
    if calib in EVAL_ONLY:
        # eval-only baselines are run with tools/test.py on the stage-1
        # checkpoint: their config has no load_from of its own
        ckpt, state = stage1_ckpts('resnet18-s3w16_1xb128-30e_'
                                   'fashion-mnist-lt')
        _run_eval_only(cfg, path, ckpt, state)
        return
    # stage 1 of Places-LT loads an ImageNet R-152 the test cannot have
    cfg.load_from = ckpt
    sampler = cfg.train_dataloader.sampler
    dataset = copy.deepcopy(cfg.train_dataloader.dataset)
    cfg.train_dataloader.update(_data_cfg(cfg))
    if dataset.type == 'FeatureCacheDataset':  # stage 2 on cached features
        dataset.cache_dir = _fake_cache(cfg, state, tmp_path / 'cache')
        cfg.train_dataloader.dataset = dataset
    if sampler.type == 'ClassBalancedSampler':  # cRT, LWS
        cfg.train_dataloader.sampler = sampler
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=100)
    runner = Runner.from_cfg(cfg)
    snap = _Snapshot()
    runner.register_hook(snap)
    runner.train()
    assert runner.iter == 1
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert np.isfinite(loss) and loss > 0
    after = runner.model.state_dict()
    changed = _changed(snap.state, after)
    if stage1 is None:  # stage 1: everything trains
        if head.type in ZERO_INIT_CLASSIFIER:
            assert torch.all(snap.state[CLASSIFIER[head.type] + 'weight'] == 0)
            optimized = {
                id(p)
                for group in runner.optim_wrapper.optimizer.param_groups
                for p in group['params']
            }
            backbone = list(runner.model.backbone.parameters())
            assert all(
                p.requires_grad and id(p) in optimized for p in backbone)
        else:
            assert any(k.startswith('backbone.') for k in changed)
        classifier = CLASSIFIER.get(head.type, 'head.fc.')
        assert any(k.startswith(classifier) for k in changed)
        return
    hooks = [h.type for h in cfg.custom_hooks]
    assert hooks[0] == 'DisAlignFreezeHook'
    trainable = cfg.custom_hooks[0].get('trainable') or []
    allowed = ('head.fc.', ) if trainable == ['head.fc'
                                              ] else ('head.calibration.', )
    assert changed, 'one stage-2 iteration changed nothing'
    assert all(k.startswith(allowed) for k in changed), changed
    # everything else is the stage-1 checkpoint, BN statistics included
    for key, value in state.items():
        if not key.startswith(allowed):
            assert torch.equal(after[key], value), key
    assert calib is not None or trainable == ['head.fc']


def _labels_dataset(labels):

    class _DS:

        def __len__(self):
            return len(labels)

        def get_gt_labels(self):
            return np.asarray(labels)

    return _DS()


def test_class_balanced_sampler_draws_classes_uniformly():
    labels = [0] * 900 + [1] * 90 + [2] * 10
    sampler = ClassBalancedSampler(_labels_dataset(labels), seed=3)
    assert len(sampler) == 1000
    draws = []
    for epoch in range(30):
        sampler.set_epoch(epoch)
        draws += list(sampler)
    lab = np.asarray(labels)[draws]
    freq = np.bincount(lab, minlength=3) / len(lab)
    # 30000 draws: std of each fraction is sqrt(2/9 / 30000) ~ 0.0027
    np.testing.assert_allclose(freq, [1 / 3] * 3, atol=0.015)
    # every image of the rare class is drawn (about 1000 draws each)
    assert set(np.asarray(draws)[lab == 2]) == set(range(990, 1000))
    # deterministic per (seed, epoch), different across epochs
    sampler.set_epoch(0)
    first = list(sampler)
    assert first == list(sampler)
    sampler.set_epoch(1)
    assert first != list(sampler)


def test_class_balanced_sampler_rejects_empty():
    with pytest.raises(ValueError, match='empty dataset'):
        ClassBalancedSampler(_labels_dataset([]), seed=0)


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_pipelines_make_the_model_input(path):
    """The real train / test pipelines (after image loading) give C x S x S."""
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(path)
    if cfg.train_dataloader.dataset.type == 'FeatureCacheDataset':
        # trained on cached features, tested on images with its base config
        assert cfg.model.type == 'CachedFeatureClassifier'
        assert cfg.test_dataloader is None and cfg.val_dataloader is None
        return
    init_default_scope('mmpretrain')
    channels = len(cfg.data_preprocessor.mean)
    size = 28 if channels == 1 else 224
    # Fashion-MNIST images are 28 x 28 grey; the others any size RGB
    shape = (28, 28) if channels == 1 else (300, 400, 3)
    rng = np.random.default_rng(0)
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        pipeline = cfg[split].dataset.pipeline
        assert pipeline[0]['type'] == 'LoadImageFromFile'
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        out = Compose(pipeline[1:])(dict(img=img, gt_label=1))
        assert tuple(out['inputs'].shape) == (channels, size, size), split
        assert out['data_samples'].gt_label.tolist() == [1]
