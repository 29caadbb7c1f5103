"""Every shipped one-stage detection config (RetinaNet): its settings, and
one training iteration of stage 1 and of stage 2 (from the stage-1
weights, DisAlign frozen) on fake data, as test_configs.py does for the
two-stage configs."""
import copy
import functools
import glob
import os.path as osp
import re
from types import SimpleNamespace

import pytest
import torch
from mmdet.registry import MODELS, TRANSFORMS
from mmdet.testing import demo_mm_inputs
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import HOOKS, init_default_scope

import mmdisalign.det  # noqa: F401
from mmdisalign.utils.class_freq import save_class_freq

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DET = osp.join(REPO, 'configs', 'det')
ALL = sorted(
    p
    for p in glob.glob(osp.join(DET, '**', 'retinanet_*.py'), recursive=True)
    if '_base_' not in p)
STAGE2 = [p for p in ALL if p.endswith('_disalign.py')]
STAGE1 = [p for p in ALL if not p.endswith('_disalign.py')]
NUM_CLASSES = {'lvis-v1': 1203, 'fmnist-lvis': 10}
CALIBRATION = [
    'bbox_head.calibration.' + n
    for n in ('alpha', 'beta', 'confidence.bias', 'confidence.weight')
]


@pytest.fixture(autouse=True)
def _mmdet_scope():
    init_default_scope('mmdet')


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.lru_cache(maxsize=None)
def _parse(path):
    return Config.fromfile(path)


def load(path):
    return copy.deepcopy(_parse(path))


def dataset_of(path):
    for name in NUM_CLASSES:
        if f'_{name}' in osp.basename(path):
            return name
    raise AssertionError(f'no known dataset in the name of {path}')


def stage1_of(stage2_path):
    cfg = load(stage2_path)
    match = re.fullmatch(r'work_dirs/([^/]+)/iter_(\d+)\.pth', cfg.load_from)
    assert match, cfg.load_from
    found = [p for p in STAGE1 if osp.basename(p) == match[1] + '.py']
    assert len(found) == 1, (stage2_path, match[1])
    return found[0], int(match[2])


def test_naming_and_pairs():
    assert len(STAGE1) == len(STAGE2) == 2
    for path in ALL:
        assert re.fullmatch(
            r'retinanet_[a-z0-9-]+_fpn_[a-z0-9.-]+_[a-z0-9.-]+'
            r'(_disalign)?\.py', osp.basename(path)), path
    pairs = {}
    for path in STAGE2:
        stage1, last_iter = stage1_of(path)
        assert load(stage1).train_cfg.max_iters == last_iter
        pairs[stage1] = path
    assert sorted(pairs) == STAGE1


@pytest.mark.parametrize('path', ALL, ids=osp.basename)
def test_settings(path):
    cfg = load(path)
    name = dataset_of(path)
    stage2 = path in STAGE2
    assert 'mmdisalign.det' in cfg.custom_imports.imports
    assert cfg.default_scope == 'mmdet'
    assert cfg.model.type == 'RetinaNet'
    assert cfg.train_dataloader.dataset.type == 'LVISV1Dataset'
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.auto_scale_lr.base_batch_size == 16
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for transform in cfg[loader].dataset.pipeline:
            assert not transform.get('with_mask')  # boxes only
            TRANSFORMS.build(transform)
    assert cfg.val_evaluator.type == 'LVISMetric'
    assert cfg.val_evaluator.metric == ['bbox']
    assert cfg.model.test_cfg.score_thr == 0.0001
    head = cfg.model.bbox_head
    assert head.num_classes == NUM_CLASSES[name]
    optimizer = cfg.optim_wrapper.optimizer
    # Stage 1: mmdet's RetinaNet lr; stage 2: the Mask R-CNN stage-2 recipe.
    assert (optimizer.type, optimizer.lr, optimizer.momentum,
            optimizer.weight_decay) == ('SGD', 0.02 if stage2 else 0.01, 0.9,
                                        0.0001)
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor) == ('LinearLR', 0.001)
    assert steps.end == cfg.train_cfg.max_iters
    if name == 'lvis-v1':
        assert warmup.end == 1000
        assert cfg.model.test_cfg.max_per_img == 300
        if stage2:
            assert (cfg.train_cfg.max_iters, steps.milestones,
                    cfg.train_cfg.val_interval) == (9000, [8000], 3000)
        else:
            assert (cfg.train_cfg.max_iters,
                    steps.milestones) == (180000, [120000, 160000])
    hooks = [h.type for h in cfg.custom_hooks]
    assert 'DisAlignCategoryCheckHook' in hooks
    assert ('DisAlignFreezeHook' in hooks) == stage2
    if stage2:
        assert head.type == 'DisAlignRetinaHead'
        assert head.calibration == dict(
            type='DisAlignCalibration', init_mode='identity')
        loss = head.loss_cls
        assert (loss.type, loss.use_sigmoid, loss.rho, loss.num_classes,
                loss.gamma, loss.alpha, loss.background_weight,
                loss.avg_mode) == ('GRWFocalLoss', True, 0.8,
                                   NUM_CLASSES[name], 2.0, 0.25, 1.0,
                                   'weighted')
        assert loss.class_freq.endswith('_train_class_freq.json')
        assert cfg.model.backbone.init_cfg is None
        assert cfg.resume is False
    else:
        assert head.type == 'RetinaHead'
        assert head.loss_cls.type == 'FocalLoss'


@pytest.fixture(scope='module')
def freq_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp('freq')
    files = {}
    for name, n in NUM_CLASSES.items():
        files[name] = str(folder / f'{name}.json')
        save_class_freq(
            files[name], [1 + (i * 7919) % 997 for i in range(n)],
            extra=dict(category_ids=list(range(1, n + 1))))
    return files


def fake_batch(num_classes, seed):
    torch.manual_seed(seed)
    return demo_mm_inputs(
        2, [[3, 64, 64], [3, 48, 64]],
        num_items=[2, 3],
        num_classes=num_classes)


@pytest.mark.parametrize('path', STAGE2, ids=osp.basename)
def test_one_iteration_each_stage(path, freq_files):
    name = dataset_of(path)
    num_classes = NUM_CLASSES[name]
    stage1_path, _ = stage1_of(path)

    cfg1 = load(stage1_path)
    model1 = MODELS.build(cfg1.model)
    model1.train()
    optim1 = build_optim_wrapper(model1, cfg1.optim_wrapper)
    log1 = model1.train_step(fake_batch(num_classes, 0), optim1)
    assert {'loss', 'loss_cls', 'loss_bbox'} <= set(log1)
    assert all(torch.isfinite(v) for v in log1.values())
    stage1_sd = {k: v.clone() for k, v in model1.state_dict().items()}
    del model1, optim1

    cfg2 = load(path)
    cfg2.model.bbox_head.loss_cls.class_freq = freq_files[name]
    model2 = MODELS.build(cfg2.model)
    model2.train()
    result = model2.load_state_dict(stage1_sd, strict=False)
    assert result.unexpected_keys == []
    assert sorted(result.missing_keys) == CALIBRATION
    optim2 = build_optim_wrapper(model2, cfg2.optim_wrapper)
    runner = SimpleNamespace(
        model=model2,
        logger=MMLogger.get_current_instance(),
        optim_wrapper=optim2,
        cfg=cfg2,
        distributed=False,
        work_dir='.',
        _load_from=cfg2.load_from,
        _resume=False)
    hooks = [HOOKS.build(dict(h)) for h in cfg2.custom_hooks]
    freeze = [h for h in hooks if type(h).__name__ == 'DisAlignFreezeHook']
    assert len(freeze) == 1
    freeze[0].after_load_checkpoint(runner, dict(state_dict=stage1_sd))
    freeze[0].before_train(runner)
    trainable = sorted(n for n, p in model2.named_parameters()
                       if p.requires_grad)
    assert trainable == CALIBRATION
    before = {k: v.clone() for k, v in model2.state_dict().items()}
    freeze[0].before_train_iter(runner, 0)
    log2 = model2.train_step(fake_batch(num_classes, 1), optim2)
    assert torch.isfinite(log2['loss_cls'])
    after = model2.state_dict()
    changed = sorted(k for k in after if not torch.equal(after[k], before[k]))
    # Only the calibration moved; alpha and beta got gradients.
    assert set(changed) <= set(CALIBRATION)
    assert {'bbox_head.calibration.alpha',
            'bbox_head.calibration.beta'} <= set(changed)
    for key, value in stage1_sd.items():
        assert torch.equal(after[key], value), key
