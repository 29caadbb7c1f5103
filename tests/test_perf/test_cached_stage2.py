"""Classification stage 2 from cached features vs the Runner's stage 2.

A tiny classifier (2-stage CIFAR ResNet, 4 channels, 8-d feature, 3
classes) on 26 grayscale 8 x 8 images: the full path is mmengine's Runner
with the stage-2 config (DisAlignLinearClsHead + GRW loss, freeze hook,
SGD with momentum and weight decay, cosine by epoch, shuffled
DefaultSampler); the fast path is ``tools/cache_features.py`` + the Runner
with the cached-feature version of the same config
(``CachedFeatureClassifier``, ``FeatureCacheDataset``,
``FeatureCacheHook``). No augmentation, same seed, so both see the same
batches and must end with the same calibration.
"""
import copy
import os
import os.path as osp

import numpy as np
import pytest
import torch
from cache_features import FeatureCacheWriter, cache_nbytes
from disalign_demo.experiments import train_stage2_cached
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, load_checkpoint
from mmengine.runner.checkpoint import save_checkpoint
from PIL import Image

import mmdisalign.cls  # noqa: F401
from mmdisalign.cls.datasets import FeatureCacheDataset

COUNTS = (13, 8, 5)  # training images per class
# top level, as mmpretrain configs have it: the Runner merges it into the
# model
PREPROCESSOR = dict(num_classes=3, mean=[100.], std=[60.], to_rgb=False)
CALIB_KEYS = ('head.calibration.alpha', 'head.calibration.beta',
              'head.calibration.confidence.weight',
              'head.calibration.confidence.bias')


def _write_images(root, split, counts, rng):
    os.makedirs(osp.join(root, split), exist_ok=True)
    lines = []
    for label, n in enumerate(counts):
        for i in range(n):
            name = f'{split}/{label}_{i}.png'
            # class-dependent brightness, so the tiny model has something
            # to separate
            img = rng.integers(0, 120, (8, 8)) + 60 * label
            Image.fromarray(img.astype(np.uint8)).save(osp.join(root, name))
            lines.append(f'{name} {label}')
    with open(osp.join(root, f'{split}.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')


def _loader(root, split, batch_size, shuffle):
    return dict(
        batch_size=batch_size,
        num_workers=0,
        dataset=dict(
            type='CustomDataset',
            data_root=root,
            ann_file=f'{split}.txt',
            data_prefix='',
            classes=['a', 'b', 'c'],
            pipeline=[
                dict(type='LoadImageFromFile', color_type='grayscale'),
                dict(type='PackInputs')
            ]),
        sampler=dict(type='DefaultSampler', shuffle=shuffle))


def _model(head_type):
    head = dict(
        type=head_type,
        num_classes=3,
        in_channels=8,
        loss=dict(type='CrossEntropyLoss'))
    if head_type == 'DisAlignLinearClsHead':
        head['loss'] = dict(
            type='GRWCrossEntropyLoss',
            class_freq=list(COUNTS),
            rho=1.2,
            num_classes=3)
    return dict(
        type='ImageClassifier',
        backbone=dict(
            type='ResNet_CIFAR',
            depth=18,
            num_stages=2,
            in_channels=1,
            stem_channels=4,
            base_channels=4,
            strides=(1, 2),
            dilations=(1, 1),
            out_indices=(1, )),
        neck=dict(type='GlobalAveragePooling'),
        head=head)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """Images, a stage-1 checkpoint and the stage-2 config."""
    root = str(tmp_path_factory.mktemp('cached_stage2'))
    rng = np.random.default_rng(0)
    _write_images(root, 'train', COUNTS, rng)
    _write_images(root, 'test', (4, 4, 4), rng)
    init_default_scope('mmpretrain')
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    stage1 = MODELS.build(
        dict(_model('LinearClsHead'), data_preprocessor=PREPROCESSOR))
    stage1.init_weights()
    with torch.no_grad():  # non-trivial BN statistics and classifier
        for m in stage1.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
        stage1.head.fc.weight.normal_(0, 0.5)
    ckpt = osp.join(root, 'stage1.pth')
    save_checkpoint(
        dict(meta=dict(epoch=1), state_dict=stage1.state_dict()), ckpt)
    cfg = Config(
        dict(
            default_scope='mmpretrain',
            custom_imports=dict(imports=['mmdisalign.cls']),
            model=_model('DisAlignLinearClsHead'),
            data_preprocessor=PREPROCESSOR,
            train_dataloader=_loader(root, 'train', 5, True),
            test_dataloader=_loader(root, 'test', 6, False),
            test_evaluator=dict(type='Accuracy', topk=(1, )),
            test_cfg=dict(),
            optim_wrapper=dict(
                optimizer=dict(
                    type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4)),
            param_scheduler=[
                dict(
                    type='CosineAnnealingLR',
                    by_epoch=True,
                    begin=0,
                    end=3,
                    T_max=3)
            ],
            train_cfg=dict(by_epoch=True, max_epochs=3),
            custom_hooks=[dict(type='DisAlignFreezeHook')],
            default_hooks=dict(
                param_scheduler=dict(type='ParamSchedulerHook'),
                sampler_seed=dict(type='DistSamplerSeedHook'),
                checkpoint=dict(type='CheckpointHook', interval=3)),
            load_from=ckpt,
            randomness=dict(seed=3),
            log_level='WARNING'))
    return root, cfg, stage1.state_dict()


@pytest.fixture(scope='module')
def full_path(setup):
    root, cfg, _ = setup
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = osp.join(root, 'full')
    cfg.experiment_name = 'full'
    runner = Runner.from_cfg(cfg)
    runner.train()
    return {
        k: v.detach().clone()
        for k, v in runner.model.state_dict().items()
    }


@pytest.fixture(scope='module')
def cache_features(load_tool):
    """``cache_features`` of tools/cache_features.py."""
    return load_tool('cache_features').cache_features


def _cached_config(cfg, cache, work_dir, load_from=None):
    """The cached-feature config of the image config ``cfg``: what the
    shipped cached config changes in its image config."""
    cfg = copy.deepcopy(cfg)
    cfg.model.type = 'CachedFeatureClassifier'
    cfg.train_dataloader.dataset = dict(
        type='FeatureCacheDataset', cache_dir=cache)
    cfg.train_dataloader.collate_fn = dict(type='feature_cache_collate')
    cfg.custom_hooks = cfg.custom_hooks + [dict(type='FeatureCacheHook')]
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    cfg.work_dir = work_dir
    cfg.experiment_name = osp.basename(work_dir)
    if load_from is not None:
        cfg.load_from = load_from
    return cfg


def train_cached(cfg, cache, work_dir, checkpoint=None):
    """tools/train.py with the cached-feature config: ``Runner.train``."""
    runner = Runner.from_cfg(
        _cached_config(cfg, cache, work_dir, load_from=checkpoint))
    runner.train()
    return dict(
        checkpoint=osp.join(work_dir, f'epoch_{cfg.train_cfg.max_epochs}.pth'),
        iters=runner.iter)


def _batch(cache, pass_idx, indices):
    """Features, logits (float32) and labels of some cached samples."""
    return (torch.from_numpy(
        np.array(cache.feats[pass_idx, indices], dtype=np.float32)),
            torch.from_numpy(
                np.array(cache.logits[pass_idx, indices], dtype=np.float32)),
            torch.from_numpy(cache.labels[indices]))


@pytest.fixture(scope='module')
def fast_path(setup, cache_features):
    root, cfg, _ = setup
    cache = osp.join(root, 'cache')
    meta = cache_features(copy.deepcopy(cfg), cache, compile=False)
    result = train_cached(cfg, cache, osp.join(root, 'fast'))
    ckpt = torch.load(result['checkpoint'], weights_only=False)
    return meta, result, ckpt


def test_cache_contents(setup, fast_path):
    meta, _, _ = fast_path
    root = setup[0]
    cache = FeatureCacheDataset(osp.join(root, 'cache'))
    assert (meta['passes'], meta['num_samples'], meta['feat_dim'],
            meta['num_classes']) == (1, 26, 8, 3)
    assert meta['label_counts'] == list(COUNTS)
    # dataset order: 13 x class 0, 8 x class 1, 5 x class 2
    np.testing.assert_array_equal(cache.labels, np.repeat([0, 1, 2], COUNTS))
    feats, logits, labels = _batch(cache, 0, [25, 0, 13])
    assert labels.tolist() == [2, 0, 1]
    assert feats.shape == (3, 8) and feats.dtype == torch.float32
    assert bool((feats >= 0).all())  # post-ReLU pooled features
    # logits are the stage-1 classifier on the features
    sd = setup[2]
    expect = feats @ sd['head.fc.weight'].T + sd['head.fc.bias']
    torch.testing.assert_close(logits, expect, rtol=1e-5, atol=1e-6)
    # the items the Runner gets: the feature and the label of a sample
    item = cache[25]
    torch.testing.assert_close(item['inputs'], feats[0], rtol=0, atol=0)
    assert item['data_samples'].gt_label.tolist() == [2]


def test_fast_path_equals_runner(setup, full_path, fast_path):
    _, result, ckpt = fast_path
    fast = ckpt['state_dict']
    # 3 epochs x ceil(26 / 5) = 18 SGD steps
    assert result['iters'] == 18
    assert ckpt['meta']['iter'] == 18
    init = dict(alpha=torch.ones(3), beta=torch.zeros(3))
    for key in CALIB_KEYS:
        torch.testing.assert_close(
            fast[key], full_path[key], rtol=1e-5, atol=1e-6, msg=key)
    # the calibration did move (so the comparison is not vacuous) ...
    assert (fast['head.calibration.alpha'] - init['alpha']).abs().max() > 1e-2
    assert (fast['head.calibration.beta'] - init['beta']).abs().max() > 1e-2
    # ... and everything else is exactly the stage-1 model
    stage1 = setup[2]
    for key, value in stage1.items():
        assert torch.equal(fast[key], value), key
        assert torch.equal(full_path[key], value), key


def test_one_shot_run_equals_the_two_steps(setup, fast_path):
    root, cfg, _ = setup
    _, _, ckpt = fast_path
    result = train_stage2_cached(
        cfg,
        _cached_config(cfg, None, osp.join(root, 'one_shot')),
        osp.join(root, 'cache_one_shot'),
        augment=False,
        compile=False)
    assert result['extraction']['num_samples'] == 26
    one_shot = torch.load(result['checkpoint'], weights_only=False)
    for key, value in ckpt['state_dict'].items():
        assert torch.equal(one_shot['state_dict'][key], value), key


def test_checkpoint_loads_and_tests_like_any_other(setup, fast_path):
    root, cfg, _ = setup
    _, result, ckpt = fast_path
    init_default_scope('mmpretrain')
    from mmpretrain.registry import MODELS
    model = MODELS.build(
        dict(copy.deepcopy(cfg.model), data_preprocessor=PREPROCESSOR))
    assert set(ckpt['state_dict']) == set(model.state_dict())
    load_checkpoint(model, result['checkpoint'], strict=True)  # or raises
    # tools/test.py's path: Runner.test() with load_from = the checkpoint
    test_cfg = copy.deepcopy(cfg)
    test_cfg.load_from = result['checkpoint']
    test_cfg.work_dir = osp.join(root, 'test')
    test_cfg.experiment_name = 'test'
    metrics = Runner.from_cfg(test_cfg).test()
    # the same accuracy by hand, with the loaded model
    model.eval()
    correct = 0
    with torch.no_grad():
        for label in range(3):
            for i in range(4):
                img = np.asarray(
                    Image.open(osp.join(root, f'test/{label}_{i}.png')))
                x = (torch.from_numpy(img.copy()).float()[None, None] -
                     100) / 60
                correct += int(model(x, mode='tensor').argmax(1) == label)
    assert metrics['accuracy/top1'] == pytest.approx(100 * correct / 12)


def _train_on_other_weights(cfg, cache, stage1, key, tmp_path, match):
    """``train_cached`` with ``stage1[key]`` changed must refuse."""
    other = {k: v.clone() for k, v in stage1.items()}
    other[key] += 0.5
    ckpt = str(tmp_path / 'other.pth')
    save_checkpoint(dict(state_dict=other), ckpt)
    with pytest.raises(ValueError, match=match):
        train_cached(cfg, cache, str(tmp_path / 'w'), checkpoint=ckpt)


def test_cache_mismatch_is_refused(setup, fast_path, tmp_path):
    root, cfg, stage1 = setup
    _train_on_other_weights(cfg, osp.join(root,
                                          'cache'), stage1, 'head.fc.weight',
                            tmp_path, 'other stage-1 weights')


def test_writer_reader_float16_and_sizes(tmp_path):
    rng = np.random.default_rng(1)
    feats = rng.random((2, 7, 5)).astype(np.float32)
    logits = rng.standard_normal((2, 7, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2, 2])
    writer = FeatureCacheWriter(
        str(tmp_path), 7, 5, 3, passes=2, dtype='float16')
    for p in range(2):  # chunked, out of order
        for chunk in ([4, 5, 6], [0, 1, 2, 3]):
            writer.write(p, chunk, feats[p, chunk], logits[p, chunk],
                         labels[chunk])
    meta = writer.close(dict(note='x'))
    assert meta['label_counts'] == [2, 2, 3] and meta['note'] == 'x'
    cache = FeatureCacheDataset(str(tmp_path))
    assert isinstance(cache.feats, np.memmap)
    assert cache.feats.dtype == np.float16
    f, z, y = _batch(cache, 1, [6, 2])
    np.testing.assert_allclose(f.numpy(), feats[1, [6, 2]], rtol=1e-3)
    np.testing.assert_allclose(
        z.numpy(), logits[1, [6, 2]], rtol=1e-3, atol=1e-3)
    assert y.tolist() == [2, 2]
    # 2 passes x 7 x (5 + 3) x 2 bytes + 7 x 8 bytes of labels
    assert cache_nbytes(7, 5, 3, 'float16', 2)['total'] == 2 * 7 * 8 * 2 + 56
    # ImageNet-LT, ResNet-50 (docs/performance.md)
    sizes = cache_nbytes(115846, 2048, 1000, 'float16')
    assert sizes['feats'] == 115846 * 2048 * 2 == 474505216
    assert sizes['logits'] == 231692000


def test_writer_errors(tmp_path):
    writer = FeatureCacheWriter(str(tmp_path), 3, 2, 2)
    writer.write(0, [0, 1], np.zeros((2, 2)), np.zeros((2, 2)), [0, 1])
    with pytest.raises(RuntimeError, match='pass 0, sample 2'):
        writer.close()
    with pytest.raises(FileExistsError, match='overwrite'):
        FeatureCacheWriter(str(tmp_path), 3, 2, 2)
    with pytest.raises(FileNotFoundError, match='meta.json'):
        FeatureCacheDataset(str(tmp_path))
    with pytest.raises(ValueError, match='feats must have shape'):
        writer.write(0, [2], np.zeros((1, 3)), np.zeros((1, 2)), [1])


def _crt_config(cfg):
    """cRT on the same stage 1: head.fc re-initialised and re-trained."""
    cfg = copy.deepcopy(cfg)
    cfg.model = _model('LinearClsHead')
    cfg.custom_hooks = [
        dict(
            type='DisAlignFreezeHook',
            trainable=['head.fc'],
            reinit=['head.fc'])
    ]
    return cfg


def test_crt_reinit_fast_path_equals_runner(setup, tmp_path):
    """cRT (re-initialised classifier) from cached features equals the
    Runner's cRT; neither starts from the stage-1 classifier."""
    root, cfg, stage1 = setup
    cfg = _crt_config(cfg)
    runner_cfg = copy.deepcopy(cfg)
    runner_cfg.work_dir = str(tmp_path / 'full')
    runner_cfg.experiment_name = 'crt_full'
    runner = Runner.from_cfg(runner_cfg)
    runner.train()
    full = {k: v.detach() for k, v in runner.model.state_dict().items()}
    result = train_stage2_cached(
        cfg,
        _cached_config(cfg, None, str(tmp_path / 'fast')),
        str(tmp_path / 'cache'),
        augment=False,
        compile=False)
    fast = torch.load(
        result['checkpoint'], map_location='cpu',
        weights_only=False)['state_dict']
    for key in ('head.fc.weight', 'head.fc.bias'):
        torch.testing.assert_close(fast[key], full[key], rtol=1e-4, atol=1e-6)
        assert not torch.allclose(fast[key], stage1[key], atol=1e-3), key
    for key, value in stage1.items():
        if not key.startswith('head.'):
            assert torch.equal(fast[key], value), key


def test_cache_of_other_backbone_is_refused(setup, tmp_path, cache_features):
    """The cache records a SHA-1 of the backbone / neck weights."""
    root, cfg, stage1 = setup
    cfg = _crt_config(cfg)
    cache = str(tmp_path / 'cache')
    cache_features(copy.deepcopy(cfg), cache, compile=False)
    _train_on_other_weights(cfg, cache, stage1, 'backbone.conv1.weight',
                            tmp_path, 'other backbone / neck weights')


def test_epoch_reads_its_view(setup, tmp_path, cache_features):
    """With P views, epoch e trains on view e mod P."""
    from mmengine.hooks import Hook

    class _Views(Hook):
        priority = 'LOWEST'

        def __init__(self):
            self.views = []

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            if batch_idx == 0:
                self.views.append(runner.train_dataloader.dataset.pass_idx)

    root, cfg, _ = setup
    cache = str(tmp_path / 'cache')
    meta = cache_features(
        copy.deepcopy(cfg), cache, passes=2, augment=True, compile=False)
    assert (meta['passes'], meta['augment']) == (2, True)
    runner = Runner.from_cfg(_cached_config(cfg, cache, str(tmp_path / 'w')))
    views = _Views()
    runner.register_hook(views)
    runner.train()
    assert views.views == [0, 1, 0]
    ckpt = torch.load(str(tmp_path / 'w' / 'epoch_3.pth'), weights_only=False)
    marker = ckpt['meta']['mmdisalign_stage2']
    assert marker['path'] == 'cached_features'
    assert (marker['cache_passes'], marker['cache_augment']) == (2, True)


def test_what_cached_features_cannot_train_is_refused(setup, fast_path,
                                                      tmp_path):
    root, cfg, _ = setup
    cache = osp.join(root, 'cache')
    backbone = copy.deepcopy(cfg)
    backbone.custom_hooks = [
        dict(type='DisAlignFreezeHook', trainable=['backbone.conv1'])
    ]
    with pytest.raises(ValueError, match='cached features do not depend'):
        train_cached(backbone, cache, str(tmp_path / 'a'))
    mixup = copy.deepcopy(cfg)
    mixup.data_preprocessor = dict(
        PREPROCESSOR, batch_augments=dict(augments=dict(type='Mixup')))
    with pytest.raises(ValueError, match='batch augmentations'):
        train_cached(mixup, cache, str(tmp_path / 'b'))


def _host_sync_counter():
    """``HostSyncCounter`` of tests/test_engine/test_no_host_sync.py."""
    import importlib.util
    path = osp.join(
        osp.dirname(osp.dirname(osp.abspath(__file__))), 'test_engine',
        'test_no_host_sync.py')
    spec = importlib.util.spec_from_file_location('_host_sync', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.HostSyncCounter


def test_batched_read_is_the_items_collated(setup, fast_path):
    """One read per batch (``__getitems__`` + ``feature_cache_collate`` +
    ``CachedFeatureDataPreprocessor``) gives the model what the items one
    by one (``default_collate`` + ``ClsDataPreprocessor``) give it."""
    from mmengine.dataset import default_collate
    from mmpretrain.models import ClsDataPreprocessor
    from mmpretrain.registry import MODELS

    from mmdisalign.cls.datasets import feature_cache_collate
    root, cfg, _ = setup
    cache = FeatureCacheDataset(osp.join(root, 'cache'))
    indices = [25, 0, 13, 7, 13]
    batch = cache.__getitems__(indices)
    assert len(batch) == 5
    items = [cache[i] for i in indices]
    for got, item in zip(batch, items):  # the batch is a sequence of items
        assert torch.equal(got['inputs'], item['inputs'])
        assert torch.equal(got['data_samples'].gt_label,
                           item['data_samples'].gt_label)
    fast = feature_cache_collate(batch)
    assert fast['inputs'].shape == (5, 8)
    assert fast['gt_label'].tolist() == [2, 0, 1, 0, 1]
    for other in (feature_cache_collate(items), default_collate(batch)):
        assert torch.equal(other['inputs'], fast['inputs'])
    init_default_scope('mmpretrain')
    for to_onehot in (True, False):  # the step below: without one-hot
        model = MODELS.build(
            dict(
                copy.deepcopy(cfg.model),
                type='CachedFeatureClassifier',
                data_preprocessor=dict(PREPROCESSOR, to_onehot=to_onehot)))
        ours = model.data_preprocessor(feature_cache_collate(batch), True)
        # what mmpretrain makes of the items (no pixel normalisation: the
        # features were normalised at extraction)
        upstream = ClsDataPreprocessor(to_onehot=to_onehot, num_classes=3)
        upstream = upstream(default_collate([cache[i] for i in indices]), True)
        assert torch.equal(ours['inputs'], upstream['inputs'])
        assert len(ours['data_samples']) == 5
        for a, b in zip(ours['data_samples'], upstream['data_samples']):
            assert set(a.keys()) == set(b.keys())
            assert torch.equal(a.gt_label, b.gt_label)
            if to_onehot:
                assert torch.equal(a.gt_score, b.gt_score)
        # the per-item batches still work
        again = model.data_preprocessor(default_collate(batch), True)
        labels = [s.gt_label.tolist() for s in again['data_samples']]
        assert labels == [[2], [0], [1], [0], [1]]
    # a training step on the batch: no host-device synchronisation from
    # mmdisalign code (data loading included)
    from mmengine.optim import OptimWrapper
    optim_wrapper = OptimWrapper(
        torch.optim.SGD(model.head.parameters(), lr=0.1))
    with _host_sync_counter()() as counter:
        data = feature_cache_collate(cache.__getitems__(indices))
        model.train_step(data, optim_wrapper)
    assert counter.ours() == [], counter.ours()
