"""Fashion-MNIST scenes: the builder, then stage 1 -> DisAlign stage 2 ->
head / body / tail evaluation with the real mmseg Runner on the CPU."""
import gzip
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmseg.registry import MODELS
from PIL import Image

import mmdisalign.seg  # noqa: F401
from mmdisalign.seg import class_pixel_ratios, group_classes
from mmdisalign.utils.class_freq import load_class_freq_meta

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_DIR = osp.join(REPO, 'configs', 'seg')
STAGE1 = osp.join(CONFIG_DIR, 'fcn_r18-w16-d8_1xb4-3k_fmnist-scenes-64x64.py')
STAGE2 = osp.join(CONFIG_DIR,
                  'fcn_r18-w16-d8_1xb4-400_fmnist-scenes-64x64_disalign.py')
FMNIST_DIR = '/usr/share/datasets/fashion-mnist'


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    """One intra-op thread: faster for these tiny models on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def scenes_tool(load_tool):
    return load_tool('dataset_converters/fmnist_ade_scenes')


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b''.join(
        int(n).to_bytes(4, 'big') for n in array.shape)
    with gzip.open(path, 'wb') as file:
        file.write(header + array.astype(np.uint8).tobytes())


def _fake_fmnist(folder, train_value, test_value):
    """Tiny IDX files: every training object is a square of intensity
    ``train_value``, every t10k object one of ``test_value``."""
    folder.mkdir()
    for split, value in (('train', train_value), ('t10k', test_value)):
        images = np.zeros((20, 28, 28), np.uint8)
        images[:, 4:24, 4:24] = value
        _write_idx(folder / f'{split}-images-idx3-ubyte.gz', images)
        _write_idx(folder / f'{split}-labels-idx1-ubyte.gz',
                   np.arange(20) % 10)
    return str(folder)


def test_class_prior(scenes_tool):
    prior = scenes_tool.class_prior(10, 1000.0)
    assert prior.sum() == pytest.approx(1.0)
    assert prior[0] / prior[-1] == pytest.approx(1000.0)
    assert prior[0] / prior[1] == pytest.approx(1000**(1 / 9))


def test_builder_layout_sources_and_seed(tmp_path, scenes_tool):
    fmnist = _fake_fmnist(tmp_path / 'fmnist', 200, 100)
    kwargs = dict(
        fmnist_dir=fmnist,
        num_train=12,
        num_val=12,
        canvas=40,
        imbalance=10,
        scales=(1.0, ),
        seed=3)
    meta = scenes_tool.build_fmnist_scenes(str(tmp_path / 'a'), **kwargs)
    scenes_tool.build_fmnist_scenes(str(tmp_path / 'b'), **kwargs)
    for split, value in (('training', 200), ('validation', 100)):
        ann_dir = tmp_path / 'a' / 'annotations' / split
        names = sorted(p.name for p in ann_dir.iterdir())
        assert names == [
            f'{i:06d}.png' for i in range(meta['splits'][split]['num_images'])
        ]
        present = set()
        for name in names:
            label = np.asarray(Image.open(ann_dir / name))
            same = np.asarray(
                Image.open(tmp_path / 'b' / 'annotations' / split / name))
            assert label.shape == (40, 40) and np.array_equal(label, same)
            assert set(np.unique(label)) <= set(range(11))
            image = np.asarray(
                Image.open(tmp_path / 'a' / 'images' / split /
                           name.replace('.png', '.jpg')).convert('RGB'))
            # each 20x20 object square: its pixels (tinted by 0.55..1) come
            # from the right Fashion-MNIST split (train 200, t10k 100)
            core = image[label > 0].max(axis=1).astype(float)
            assert np.median(core) > 0.5 * value
            assert np.median(core) <= value + 8
            present |= set(np.unique(label)) - {0}
        # ensure_all_classes: every class is visible in every split
        assert present == set(range(1, 11))
        assert sum(meta['splits'][split]['pixels']) == int(
            sum((np.asarray(Image.open(ann_dir / n)) > 0).sum()
                for n in names))


def test_builder_rejects_bad_arguments(tmp_path, scenes_tool):
    fmnist = _fake_fmnist(tmp_path / 'fmnist', 200, 100)
    with pytest.raises(ValueError, match='fit 28 \\* scale'):
        scenes_tool.build_fmnist_scenes(
            str(tmp_path / 'x'), fmnist_dir=fmnist, canvas=32, scales=(1.5, ))
    with pytest.raises(ValueError, match='cannot hold'):
        scenes_tool.build_fmnist_scenes(
            str(tmp_path / 'x'),
            fmnist_dir=fmnist,
            num_train=3,
            num_val=3,
            objects_per_scene=(1, 1),
            imbalance=1e9)
    with pytest.raises(FileNotFoundError, match='nowhere'):
        scenes_tool.build_fmnist_scenes(
            str(tmp_path / 'x'), fmnist_dir=str(tmp_path / 'nowhere'))


def _toy_cfg(path, root, freq, work_dir, max_iters, **extra):
    cfg = Config.fromfile(path)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].num_workers = 0
        cfg[key].persistent_workers = False
        cfg[key].dataset.data_root = root
    cfg.val_evaluator.class_freq = freq
    cfg.test_evaluator.class_freq = freq
    if 'loss_decode' in cfg.model.decode_head and cfg.model.decode_head[
            'loss_decode'].get('class_freq'):
        cfg.model.decode_head.loss_decode.class_freq = freq
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = max_iters
    cfg.param_scheduler[0].end = max_iters
    cfg.default_hooks.checkpoint.interval = max_iters
    cfg.default_hooks.logger.interval = max_iters
    cfg.work_dir = str(work_dir)
    cfg.randomness = dict(seed=0)
    cfg.log_level = 'WARNING'
    cfg.merge_from_dict(extra)
    return cfg


@pytest.fixture(scope='module')
def scenes(tmp_path_factory, scenes_tool, load_tool):
    if not osp.isdir(FMNIST_DIR):
        pytest.skip(f'Fashion-MNIST not installed in {FMNIST_DIR}')
    root = tmp_path_factory.mktemp('scenes')
    scenes_tool.build_fmnist_scenes(
        str(root), num_train=300, num_val=24, seed=0)
    freq = str(root / 'train_pixel_freq.json')
    load_tool('analysis_tools/seg_pixel_freq').main([
        STAGE1, freq, '--cfg-options',
        f'train_dataloader.dataset.data_root={root}'
    ])
    return str(root), freq


@pytest.fixture(scope='module')
def stage1(scenes, tmp_path_factory):
    root, freq = scenes
    work_dir = tmp_path_factory.mktemp('stage1')
    runner = Runner.from_cfg(_toy_cfg(STAGE1, root, freq, work_dir, 12))
    runner.train()
    return str(work_dir / 'iter_12.pth')


def test_pixel_frequencies_of_the_scenes(scenes):
    root, freq = scenes
    meta = load_class_freq_meta(freq)
    with open(osp.join(root, 'meta.json')) as file:
        info = json.load(file)
    # the tool (through the dataset, reduce_zero_label) finds exactly the
    # pixels the builder drew: label c + 1 -> class c, 0 -> ignored
    assert meta['counts'] == info['splits']['training']['pixels']
    assert meta['ignored_pixels'] == info['splits']['training']['other_pixels']
    assert meta["total_pixels"] == 300 * 64 * 64
    assert meta['reduce_zero_label'] is True
    assert meta['classes'] == info['classes']
    # the long-tailed prior spreads the classes over the toy's three groups
    thresholds = Config.fromfile(STAGE1).val_evaluator.thresholds
    groups = group_classes(class_pixel_ratios(freq), thresholds)
    assert all(len(group) > 0 for group in groups)
    assert groups[0][0] == 0 and groups[-1][-1] == 9


def test_stage1_stage2_head_body_tail(scenes, stage1, tmp_path):
    root, freq = scenes
    cfg = _toy_cfg(
        STAGE2, root, freq, tmp_path / 'stage2', 6, load_from=stage1)
    assert cfg.model.decode_head.type == 'DisAlignFCNHead'
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()

    state = runner.model.state_dict()
    stage1_state = torch.load(
        stage1, map_location='cpu', weights_only=False)['state_dict']
    calib = 'decode_head.calibration.'
    # every stage-1 tensor (weights and BN statistics) is unchanged
    assert set(stage1_state) == {k for k in state if not k.startswith(calib)}
    for key, value in stage1_state.items():
        assert torch.equal(state[key], value), key
    # the calibration trained (alpha = beta = 0 at init)
    assert state[calib + 'alpha'].abs().sum() > 0
    assert state[calib + 'beta'].abs().sum() > 0
    assert runner.model.decode_head.calibration.confidence[
        0].weight.requires_grad
    assert not runner.model.decode_head.conv_seg.weight.requires_grad
    # head / body / tail evaluation
    for name in ('head', 'body', 'tail'):
        for key in ('mIoU', 'mAcc'):
            value = metrics[f'{name}_{key}']
            assert np.isnan(value) or 0 <= value <= 100
    assert 0 <= metrics['mIoU'] <= 100


def test_stage1_checkpoint_of_another_architecture(scenes, stage1, tmp_path):
    root, freq = scenes
    # a checkpoint of the same backbone with a DeepLabV3+ decode head
    cfg = Config.fromfile(STAGE1)
    cfg.model.decode_head = dict(
        type='DepthwiseSeparableASPPHead',
        in_channels=128,
        channels=32,
        dilations=(1, 12),
        c1_in_channels=16,
        c1_channels=8,
        num_classes=10,
        norm_cfg=dict(type='BN'))
    init_default_scope('mmseg')
    other = MODELS.build(cfg.model)
    other_ckpt = str(tmp_path / 'deeplabv3plus.pth')
    torch.save(dict(state_dict=other.state_dict(), meta=dict()), other_ckpt)
    runner = Runner.from_cfg(
        _toy_cfg(STAGE2, root, freq, tmp_path / 'a', 2, load_from=other_ckpt))
    with pytest.raises(
            ValueError,
            match=r'(?s)does not fit the frozen part'
            r'.*Missing: decode_head\.convs\.0\.conv\.weight'):
        runner.train()
    # the right head, other channels
    cfg = _toy_cfg(STAGE2, root, freq, tmp_path / 'b', 2, load_from=stage1)
    cfg.model.decode_head.channels = 24  # the checkpoint has 32
    runner = Runner.from_cfg(cfg)
    with pytest.raises(
            ValueError,
            match=r'(?s)does not fit the frozen part'
            r'.*decode_head\.conv_seg\.weight \(model '
            r'\(10, 24, 1, 1\), checkpoint \(10, 32, 1, 1\)\)'):
        runner.train()
