"""Every shipped detection config: its settings, and one training iteration
of stage 1 and of stage 2 (from the stage-1 weights, DisAlign frozen) on
fake data.

Stage-1 and stage-2 configs come in pairs: each stage-2 config names its
stage-1 checkpoint in ``load_from`` (``work_dirs/<stage-1 config>/iter_N``),
so one test per pair builds both models, runs a stage-1 iteration, loads
its weights into the stage-2 model without renaming, freezes it with the
config's own ``DisAlignFreezeHook`` and runs a stage-2 iteration. Only the
RoI sampling sizes are shrunk (``train_cfg``, not the architecture) so that
a 1230-class model iterates in about a second on one CPU thread.
"""
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
CONFIGS = osp.join(REPO, 'configs')
DET = osp.join(CONFIGS, 'det')
# The shipped two-stage configs; the files under _base_ are parts of them.
# The one-stage ones (RetinaNet) are tested in test_configs_one_stage.py.
ALL = sorted(
    p for p in glob.glob(osp.join(DET, '**', '*.py'), recursive=True)
    if '_base_' not in p and not osp.basename(p).startswith('retinanet'))
# Trained from the frozen stage 1: DisAlign and the LWS baseline.
STAGE2 = [p for p in ALL if p.endswith(('_disalign.py', '_lws.py'))]
# Post-hoc baselines: the stage-1 checkpoint tested with a calibration.
POSTHOC = [p for p in ALL if p.endswith(('_tau-norm.py', '_logit-adjust.py'))]
STAGE1 = [p for p in ALL if p not in STAGE2 and p not in POSTHOC]
# The calibration of each method's box head.
CALIBRATION = {
    'disalign': dict(type='DisAlignCalibration', init_mode='identity'),
    'lws': dict(type='LWSCalibration'),
    'tau-norm': dict(type='TauNormCalibration', tau=1.0),
}
NUM_CLASSES = {'lvis-v0.5': 1230, 'lvis-v1': 1203, 'fmnist-lvis': 10}
# Reference schedules: (stage-1 iterations, steps), (stage-2 iterations,
# step, validation interval).
SCHEDULE = {
    'lvis-v0.5': ((90000, [60000, 80000]), (4500, [4000], 1500)),
    'lvis-v1': ((180000, [120000, 160000]), (9000, [8000], 3000)),
}


@pytest.fixture(autouse=True)
def _mmdet_scope():
    """Every test here builds in the mmdet scope (tests/conftest.py clears
    the default scope around each test)."""
    init_default_scope('mmdet')


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    """One intra-op thread: much faster than two on a shared 2-core box."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.lru_cache(maxsize=None)
def _parse(path):
    return Config.fromfile(path)


def load(path):
    """A fresh copy of a parsed config (parsing takes about a second)."""
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


def bbox_heads(cfg):
    heads = cfg.model.roi_head.bbox_head
    return heads if isinstance(heads, list) else [heads]


def walk(node, key):
    """Every value stored under ``key`` anywhere in a config tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield node, v
            yield from walk(v, key)
    elif isinstance(node, (list, tuple)):
        for item in node:
            yield from walk(item, key)


def shrink(cfg):
    """Fewer RoIs per image: a train-time setting, the model is unchanged."""
    train_cfg = cfg.model.train_cfg
    train_cfg.rpn_proposal.nms_pre = 256
    train_cfg.rpn_proposal.max_per_img = 64
    rcnn = train_cfg.rcnn if isinstance(train_cfg.rcnn,
                                        list) else [train_cfg.rcnn]
    for stage in rcnn:
        stage.sampler.num = 16


def method_of(path):
    for method in ('disalign', 'lws', 'tau-norm', 'logit-adjust'):
        if path.endswith(f'_{method}.py'):
            return method
    return None


def test_naming_and_pairs():
    assert len(STAGE1) == 16 and len(STAGE2) == 18 and len(POSTHOC) == 4
    basenames = [
        osp.basename(p)
        for p in glob.glob(osp.join(CONFIGS, '**', '*.py'), recursive=True)
    ]
    for path in ALL:
        assert basenames.count(osp.basename(path)) == 1, path
        assert re.fullmatch(
            r'(cascade-)?mask-rcnn_[a-z0-9-]+_fpn(_4conv1fc-gn)?'
            r'(_cosine)?_[a-z0-9.-]+_[a-z0-9.-]+'
            r'(_disalign|_lws|_tau-norm|_logit-adjust)?\.py',
            osp.basename(path)), path
    # Every stage-1 config is the load_from of exactly one stage-2 config,
    # and load_from is the last checkpoint of that stage-1 run.
    pairs = {}
    for path in STAGE2:
        stage1, last_iter = stage1_of(path)
        assert load(stage1).train_cfg.max_iters == last_iter
        pairs[stage1] = path
    assert sorted(pairs) == STAGE1
    # A post-hoc config tests the checkpoint of the stage 1 it inherits.
    for path in POSTHOC:
        stage1 = path.replace('_8xb2_', '_8xb2-ms-180k_').replace(
            '_1xb2_', '_1xb2-2k_').rsplit('_', 1)[0] + '.py'
        assert stage1 in STAGE1, path
        assert load(path).load_from == (
            f'work_dirs/{osp.basename(stage1)[:-3]}/'
            f'iter_{load(stage1).train_cfg.max_iters}.pth')


@pytest.mark.parametrize('path', ALL, ids=osp.basename)
def test_settings(path):
    cfg = load(path)
    name = dataset_of(path)
    num_classes = NUM_CLASSES[name]
    cosine = '_cosine_' in osp.basename(path)
    # The box head of the stage-1 model (the stage-2 one is its DisAlign
    # variant).
    four_conv = '_4conv1fc-gn_' in osp.basename(path)
    upstream_head = ('Shared4Conv1FCBBoxHead'
                     if four_conv else 'Shared2FCBBoxHead')
    stage2 = path in STAGE2
    assert 'mmdisalign.det' in cfg.custom_imports.imports
    assert cfg.default_scope == 'mmdet'
    # Instance-balanced sampling in both stages (no repeat-factor sampling).
    assert cfg.train_dataloader.dataset.type in ('LVISV05Dataset',
                                                 'LVISV1Dataset')
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.auto_scale_lr.base_batch_size == 16  # 8 GPUs x 2 images
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for transform in cfg[loader].dataset.pipeline:
            TRANSFORMS.build(transform)
    assert cfg.val_evaluator.type == 'LVISMetric'
    assert cfg.val_evaluator.metric == ['bbox', 'segm']
    assert cfg.model.test_cfg.rcnn.score_thr == 0.0001
    assert cfg.model.test_cfg.rcnn.max_per_img == 300
    assert cfg.model.roi_head.mask_head.num_classes == num_classes
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.momentum,
            optimizer.weight_decay) == ('SGD', 0.02, 0.9, 0.0001)
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor,
            warmup.by_epoch) == ('LinearLR', 0.001, False)
    assert steps.type == 'MultiStepLR' and steps.by_epoch is False
    if name in SCHEDULE:
        (iters1, steps1), (iters2, steps2, val2) = SCHEDULE[name]
        assert warmup.end == 1000
        if stage2:
            assert (cfg.train_cfg.max_iters, steps.milestones,
                    cfg.train_cfg.val_interval) == (iters2, steps2, val2)
        else:
            assert (cfg.train_cfg.max_iters, steps.milestones) == (iters1,
                                                                   steps1)
        assert steps.end == cfg.train_cfg.max_iters
    hooks = [h.type for h in cfg.custom_hooks]
    assert 'DisAlignCategoryCheckHook' in hooks
    assert ('DisAlignFreezeHook' in hooks) == stage2
    for head in bbox_heads(cfg):
        assert head.num_classes == num_classes
        predictor = head.get('cls_predictor_cfg', dict(type='Linear'))
        if cosine:
            assert predictor == dict(
                type='NormedLinear', tempearture=20, bias=False)
        else:
            assert predictor['type'] == 'Linear'
        method = method_of(path)
        if four_conv:
            assert head.conv_out_channels == 256
            assert head.fc_out_channels == 1024
            assert head.norm_cfg == dict(
                type='GN', num_groups=32, requires_grad=True)
        if method == 'logit-adjust':
            assert head.type == 'DisAlignShared2FCBBoxHead'
            assert head.calibration.type == 'LogitAdjustCalibration'
            assert head.calibration.tau == 1.0
            assert head.calibration.class_freq.endswith(
                '_train_class_freq.json')
        elif method is not None:
            assert head.type == 'DisAlign' + upstream_head
            assert head.calibration == CALIBRATION[method]
        if method in ('tau-norm', 'logit-adjust'):
            assert head.loss_cls.type == 'CrossEntropyLoss'
        elif stage2:
            loss = head.loss_cls
            assert (loss.type, loss.rho, loss.num_classes,
                    loss.with_background, loss.background_weight,
                    loss.avg_mode) == ('GRWCrossEntropyLoss', 0.8, num_classes,
                                       True, 1.0, 'weighted')
            # A plain path: the default "counts" = per-category image
            # counts.
            assert isinstance(loss.class_freq, str)
            assert loss.class_freq.endswith('_train_class_freq.json')
        else:
            assert head.type == upstream_head
            assert head.loss_cls.type == 'CrossEntropyLoss'
    if stage2 or method is not None:
        # Nothing is downloaded: every weight comes from load_from.
        inits = [v for _, v in walk(cfg.model, 'init_cfg') if v]
        assert not any('Pretrained' in str(v) for v in inits), inits
        assert cfg.resume is False


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


def build_model(cfg):
    model = MODELS.build(cfg.model)
    model.train()
    return model


def fake_batch(num_classes, seed):
    torch.manual_seed(seed)
    return demo_mm_inputs(
        2, [[3, 64, 64], [3, 48, 64]],
        num_items=[2, 3],
        num_classes=num_classes,
        with_mask=True)


@pytest.mark.parametrize('path', STAGE2, ids=osp.basename)
def test_one_iteration_each_stage(path, freq_files):
    name = dataset_of(path)
    num_classes = NUM_CLASSES[name]
    stage1_path, _ = stage1_of(path)

    # Stage 1: the upstream model, one iteration.
    cfg1 = load(stage1_path)
    shrink(cfg1)
    model1 = build_model(cfg1)
    optim1 = build_optim_wrapper(model1, cfg1.optim_wrapper)
    log1 = model1.train_step(fake_batch(num_classes, 0), optim1)
    assert 'loss' in log1 and any(k.endswith('loss_mask') for k in log1)
    assert all(torch.isfinite(v) for v in log1.values())
    stage1_sd = {k: v.clone() for k, v in model1.state_dict().items()}
    del model1, optim1

    # Stage 2: build, load the stage-1 weights, freeze, one iteration.
    cfg2 = load(path)
    shrink(cfg2)
    for parent, _ in list(walk(cfg2.model, 'class_freq')):
        parent['class_freq'] = freq_files[name]
    model2 = build_model(cfg2)
    result = model2.load_state_dict(stage1_sd, strict=False)
    assert result.unexpected_keys == []
    calib_keys = sorted(result.missing_keys)
    heads = len(bbox_heads(cfg2))
    lws = path.endswith('_lws.py')
    assert len(calib_keys) == (1 if lws else 4) * heads
    pattern = ('alpha'
               if lws else r'(alpha|beta|confidence\.weight|confidence\.bias)')
    assert all(
        re.fullmatch(rf'roi_head\.bbox_head(\.\d)?\.calibration\.{pattern}', k)
        for k in calib_keys), calib_keys
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
    assert trainable == calib_keys
    before = {k: v.clone() for k, v in model2.state_dict().items()}
    freeze[0].before_train_iter(runner, 0)
    log2 = model2.train_step(fake_batch(num_classes, 1), optim2)
    loss_cls = [v for k, v in log2.items() if k.endswith('loss_cls')]
    assert len(loss_cls) == heads and all(torch.isfinite(v) for v in loss_cls)
    after = model2.state_dict()
    changed = sorted(k for k in after if not torch.equal(after[k], before[k]))
    # Only the calibration moved (alpha and beta get gradients; at the
    # identity init the confidence gradient is 0 and only weight decay
    # moves its weight), and every stage-1 tensor, buffers included, is
    # bit-identical to the checkpoint.
    assert set(changed) <= set(calib_keys)
    assert {k
            for k in changed if k.endswith(('alpha', 'beta'))
            } == {k
                  for k in calib_keys if k.endswith(('alpha', 'beta'))}
    for key, value in stage1_sd.items():
        assert torch.equal(after[key], value), key


@pytest.mark.parametrize('path', POSTHOC, ids=osp.basename)
def test_posthoc_on_the_stage1_model(path, freq_files):
    """A post-hoc config is its stage-1 model tested with a calibration:
    the stage-1 weights load with nothing missing or unexpected; the box
    head gives the stage-1 foreground logits divided by ||w_j|| (tau-norm)
    or minus log(n_j / n) (logit adjustment, tau 1) and the stage-1
    background logit; one test step detects."""
    name = dataset_of(path)
    num_classes = NUM_CLASSES[name]
    cfg = load(path)
    for parent, _ in list(walk(cfg.model, 'class_freq')):
        parent['class_freq'] = freq_files[name]
    stage1_cfg = load(
        path.replace('_8xb2_', '_8xb2-ms-180k_').replace(
            '_1xb2_', '_1xb2-2k_').rsplit('_', 1)[0] + '.py')
    torch.manual_seed(0)
    stage1 = MODELS.build(stage1_cfg.model).eval()
    model = MODELS.build(cfg.model).eval()
    result = model.load_state_dict(stage1.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys

    feats = torch.rand(5, stage1_cfg.model.roi_head.bbox_head.in_channels,
                       *stage1.roi_head.bbox_head.roi_feat_size)

    with torch.no_grad():
        ours, _ = model.roi_head.bbox_head(feats)
        theirs, _ = stage1.roi_head.bbox_head(feats)
    weight = stage1.roi_head.bbox_head.fc_cls.weight[:num_classes]
    if path.endswith('_tau-norm.py'):
        fg = theirs[:, :num_classes] / weight.norm(dim=1)
    else:
        counts = torch.tensor(
            [1. + (i * 7919) % 997 for i in range(num_classes)])
        fg = theirs[:, :num_classes] - (counts / counts.sum()).log()
    torch.testing.assert_close(ours[:, :num_classes], fg)
    assert torch.equal(ours[:, -1], theirs[:, -1])  # background
    batch = fake_batch(num_classes, 2)
    with torch.no_grad():
        [det] = model.test_step(
            dict(
                inputs=batch['inputs'][:1],
                data_samples=batch['data_samples'][:1]))
    assert det.pred_instances.labels.max() < num_classes
