"""Shared set-up of the launch tests: tiny data, stage-1 weights, helpers.

Everything runs on the CPU. The data are tiny subsets of the embedded
Fashion-MNIST (Debian package ``dataset-fashion-mnist``), built once per
session. Stage 2 uses a deterministic pipeline (no random augmentation) and
``avg_mode='pixel'`` for the GRW loss, so that a multi-process run and a
one-process run with the same total batch compute the same gradients up to
float rounding (see docs/launch.md).

A probe hook (module ``disalign_probe``, written into the session folder
and imported by the test configs through ``custom_imports``) saves, on every
rank, the calibration right after ``DisAlignFreezeHook`` ran and the whole
state dict, ``requires_grad`` flags, rank, world size and iteration at the
end of training; it can also simulate a crash after a given epoch.

Also here: the stand-in ``srun`` of the SLURM tests and the tiny stage-2
configs on top of upstream configs (fixture ``task``). Test modules get the
helpers through the ``h`` fixture (they must not import this file).
"""
import importlib
import importlib.util
import os
import os.path as osp
import re
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / 'tools'
PYTHON = sys.executable
FMNIST_DIR = '/usr/share/datasets/fashion-mnist'


def _shipped_cls_configs():
    """The shipped Fashion-MNIST-LT stage-2 config and its stage 1: the
    config whose work dir its ``load_from`` names (configs/README.md)."""
    folder = REPO / 'configs/cls/fashion_mnist_lt'
    stage2 = sorted(folder.glob('*_disalign.py'))[0]
    stage1 = re.search(r"^load_from = 'work_dirs/([^/']+)/",
                       stage2.read_text(), re.M)
    return folder / f'{stage1.group(1)}.py', stage2


STAGE1_CONFIG, STAGE2_CONFIG = _shipped_cls_configs()

#: Stage-2 training samples (the first ones of the long-tailed list).
NUM_TRAIN = 48
#: Total batch of stage 2: one process x 16, or two x 8.
TOTAL_BATCH = 16
EPOCHS = 2
ITERS = NUM_TRAIN // TOTAL_BATCH * EPOCHS
#: Calibration of the multi-process runs vs the one-process run.
ATOL = 1e-6

PROBE_SOURCE = '''\
"""Test probe: records what every rank trained (tests/test_tools)."""
import os
import os.path as osp

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


class SimulatedCrash(RuntimeError):
    """Raised by ProbeHook to interrupt a run after a checkpoint."""


def _bare(model):
    return model.module if is_model_wrapper(model) else model


def _calibration(model):
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()
            if '.calibration.' in k}


@HOOKS.register_module(force=True)
class ProbeHook(Hook):
    """Dump the trained state of each rank; crash on request.

    ``DISALIGN_PROBE_CRASH_AFTER_EPOCH=N`` raises :class:`SimulatedCrash`
    after epoch N, once the checkpoint of that epoch is written (this hook
    has the lowest priority).
    """

    priority = 'LOWEST'

    def before_train(self, runner):
        self.start = dict(
            epoch=runner.epoch, iter=runner.iter,
            calibration=_calibration(_bare(runner.model)))

    def after_train_epoch(self, runner):
        crash = os.environ.get('DISALIGN_PROBE_CRASH_AFTER_EPOCH')
        if crash is not None and runner.epoch + 1 == int(crash):
            raise SimulatedCrash(f'simulated crash after epoch {crash}')

    def after_run(self, runner):
        model = _bare(runner.model)
        torch.save(
            dict(
                start=getattr(self, 'start', None),
                state_dict={k: v.detach().cpu().clone()
                            for k, v in model.state_dict().items()},
                requires_grad={n: p.requires_grad
                               for n, p in model.named_parameters()},
                rank=runner.rank,
                world_size=runner.world_size,
                iter=runner.iter,
                epoch=runner.epoch),
            osp.join(runner.work_dir, f'probe_rank{runner.rank}.pth'))
'''

#: The stage-2 layer of the tests on top of the shipped DisAlign config.
STAGE2_TEST_LAYER = '''\
_base_ = {base!r}
custom_imports = dict(
    imports=['mmdisalign.cls', 'disalign_probe'], allow_failed_imports=False)
data_root = {data_root!r}
load_from = {load_from!r}
# Deterministic: no random crop / flip, so that every process (and a resumed
# run) sees exactly the same input.
train_pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='PackInputs')
]
train_dataloader = dict(
    batch_size={batch},
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True, seed=0),
    dataset=dict(
        data_root=data_root,
        classes=data_root + 'classes.txt',
        indices={num_train},
        pipeline=train_pipeline))
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, classes=data_root + 'classes.txt'))
test_evaluator = dict(data_root=data_root)
model = dict(
    head=dict(
        loss=dict(class_freq=data_root + 'class_freq.json',
                  avg_mode='pixel')))
custom_hooks = [dict(type='DisAlignFreezeHook'), dict(type='ProbeHook')]
train_cfg = dict(max_epochs={epochs})
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end={epochs},
         T_max={epochs})
]
default_hooks = dict(
    logger=dict(interval=1), checkpoint=dict(interval=1, max_keep_ckpts=3))
randomness = dict(seed=0)
'''

STAGE1_TEST_LAYER = '''\
_base_ = {base!r}
data_root = {data_root!r}
train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root, classes=data_root + 'classes.txt', indices=48))
val_dataloader = None
val_cfg = None
val_evaluator = None
train_cfg = dict(max_epochs=1)
param_scheduler = [
    dict(type='ConstantLR', factor=1.0, by_epoch=True, begin=0, end=1)
]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
randomness = dict(seed=0)
'''

_TOOL_MODULES = {}


def load_tool(name):
    """Import ``tools/<name>.py`` as a module (cached)."""
    if name not in _TOOL_MODULES:
        spec = importlib.util.spec_from_file_location(
            f'mmdisalign_tools_{name}', TOOLS / f'{name}.py')
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _TOOL_MODULES[name] = module
    return _TOOL_MODULES[name]


def run_tool(name, *argv):
    """Run ``tools/<name>.py`` in this process, with unique instance names.

    mmengine keeps its logger, message hub and visualizer as global
    instances keyed by name: the logger and message hub by experiment name
    (config name plus a timestamp in seconds, so two runs of one config
    within a second would share them), the visualizer by the ``name`` of
    its config (``'visualizer'`` in the upstream runtimes, so a later runner
    in the same process would reuse the first one, with its save_dir and
    dataset). A fresh process, as on the command line, has none of this.
    """
    tag = uuid.uuid4().hex[:12]
    argv = [str(a) for a in argv] + [
        '--cfg-options', f'experiment_name=t{tag}', f'visualizer.name=v{tag}'
    ]
    from mmengine.registry import DefaultScope
    saved_env = dict(os.environ)  # the tools export LOCAL_RANK
    # The Runner makes its default_scope the current one; later tests of
    # the session should not inherit it.
    saved_scopes = dict(DefaultScope._instance_dict)
    try:
        return load_tool(name).main(argv)
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        DefaultScope._instance_dict.clear()
        DefaultScope._instance_dict.update(saved_scopes)


def write(path, text):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load(path):
    """Load a trusted checkpoint or probe file written by a test run."""
    return torch.load(str(path), map_location='cpu', weights_only=False)


def calibration(state_dict):
    """The calibration tensors of a state dict."""
    return {k: v for k, v in state_dict.items() if '.calibration.' in k}


def frozen(state_dict):
    """Everything but the calibration."""
    return {k: v for k, v in state_dict.items() if '.calibration.' not in k}


def max_abs_diff(a, b):
    """Largest absolute difference of two dicts of tensors (same keys)."""
    assert set(a) == set(b), sorted(set(a) ^ set(b))
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def tool_env(probe_dir, **extra):
    """Environment of a launched subprocess: this interpreter first on PATH,
    the probe module importable, one thread per process."""
    env = dict(os.environ)
    env['PATH'] = osp.dirname(PYTHON) + os.pathsep + env.get('PATH', '')
    env['PYTHON'] = PYTHON
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (str(probe_dir), env.get('PYTHONPATH')) if p)
    env['OMP_NUM_THREADS'] = '1'
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR',
                 'MASTER_PORT', 'NNODES', 'NODE_RANK', 'PORT'):
        env.pop(name, None)
    for name in [k for k in env if k.startswith('SLURM_')]:
        env.pop(name)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(cmd, env, cwd, timeout=300):
    """Run a command; return the CompletedProcess (stdout + stderr)."""
    return subprocess.run([str(c) for c in cmd],
                          cwd=str(cwd),
                          env=env,
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True,
                          timeout=timeout)


def check_ok(proc):
    assert proc.returncode == 0, (
        f'exit code {proc.returncode}; last output:\n{proc.stdout[-6000:]}')


@pytest.fixture(scope='session')
def session_dir(tmp_path_factory):
    return tmp_path_factory.mktemp('test_tools')


@pytest.fixture(scope='session')
def probe_dir(session_dir):
    """Folder holding the ``disalign_probe`` module, also on sys.path."""
    folder = session_dir / 'probe'
    write(folder / 'disalign_probe.py', PROBE_SOURCE)
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return folder


@pytest.fixture(scope='session')
def fmnist_lt(session_dir):
    """Fashion-MNIST-LT, ratio 10, 16..1 training images per class (61),
    2 test images per class (20)."""
    if not osp.isfile(osp.join(FMNIST_DIR, 'train-images-idx3-ubyte.gz')):
        pytest.skip('needs the Debian package dataset-fashion-mnist')
    from disalign_demo.fashion_mnist_lt import build_fashion_mnist_lt
    root = session_dir / 'fmnist_lt'
    meta = build_fashion_mnist_lt(
        str(root), ratio=10, seed=0, max_per_class=16, test_per_class=2)
    assert sum(meta['train_counts']) >= NUM_TRAIN
    return root


@pytest.fixture(scope='session')
def cls_stage1(session_dir, fmnist_lt):
    """Stage 1, one epoch, trained by tools/train.py: the checkpoint."""
    cfg = write(
        session_dir / 'cls_stage1.py',
        STAGE1_TEST_LAYER.format(
            base=str(STAGE1_CONFIG), data_root=f'{fmnist_lt}/'))
    work_dir = session_dir / 'cls_stage1'
    run_tool('train', cfg, '--work-dir', work_dir)
    ckpt = work_dir / 'epoch_1.pth'
    assert ckpt.is_file()
    return ckpt


def stage2_config(path,
                  fmnist_lt,
                  load_from,
                  batch=TOTAL_BATCH,
                  epochs=EPOCHS):
    """Write the stage-2 test config (see :data:`STAGE2_TEST_LAYER`)."""
    return write(
        path,
        STAGE2_TEST_LAYER.format(
            base=str(STAGE2_CONFIG),
            data_root=f'{fmnist_lt}/',
            load_from=str(load_from),
            batch=batch,
            num_train=NUM_TRAIN,
            epochs=epochs))


@pytest.fixture(scope='session')
def cls_stage2_config(session_dir, fmnist_lt, cls_stage1, probe_dir):
    return stage2_config(session_dir / 'cls_stage2.py', fmnist_lt, cls_stage1)


@pytest.fixture(scope='session')
def cls_single(session_dir, cls_stage2_config):
    """The one-process stage-2 run (tools/train.py, batch 16): its work dir.

    It is the reference of the multi-process and the resumed runs.
    """
    work_dir = session_dir / 'cls_single'
    run_tool('train', cls_stage2_config, '--work-dir', work_dir)
    return work_dir


def assert_stage2_result(probe,
                         stage1_ckpt,
                         iters=ITERS,
                         min_change=1e3 * ATOL):
    """What every stage-2 run must end with: the frozen part exactly the
    stage-1 weights, only the calibration trainable, all iterations done,
    and a calibration that moved more than ``min_change`` (by default far
    beyond the tolerance of the comparisons) during this run."""
    stage1 = load(stage1_ckpt)['state_dict']
    state = probe['state_dict']
    kept = frozen(state)
    assert set(kept) == set(stage1)
    for key, value in kept.items():
        assert torch.equal(value, stage1[key]), key
    trainable = sorted(n for n, g in probe['requires_grad'].items() if g)
    assert trainable and all('.calibration.' in n for n in trainable)
    assert probe['iter'] == iters
    start = probe['start']['calibration']
    assert max_abs_diff(calibration(state), start) > min_change


def free_port():
    """A port that is free now."""
    import socket
    with socket.socket() as sock:
        sock.bind(('', 0))
        return sock.getsockname()[1]


def probes(work_dir, world_size):
    """The probe files of all ranks of a run, checked for rank and size."""
    found = [
        load(Path(work_dir) / f'probe_rank{r}.pth') for r in range(world_size)
    ]
    for rank, probe in enumerate(found):
        assert (probe['rank'], probe['world_size']) == (rank, world_size)
    return found


def assert_matches_single(found, single_dir, stage1):
    """Ranks identical, within ATOL of the one-process run, the same start,
    stage 1 untouched."""
    single = load(Path(single_dir) / 'probe_rank0.pth')
    assert single['world_size'] == 1
    reference = calibration(single['state_dict'])
    first = calibration(found[0]['state_dict'])
    for probe in found:
        assert_stage2_result(probe, stage1)
        mine = calibration(probe['state_dict'])
        for key in reference:
            assert torch.equal(mine[key], first[key]), key
        assert max_abs_diff(mine, reference) < ATOL
        # The same start: the stage-1 model plus the calibration's init.
        assert max_abs_diff(probe['start']['calibration'],
                            single['start']['calibration']) == 0


def predictions(path):
    """{image path: prediction scores} of a DumpResults pickle."""
    import pickle
    with open(path, 'rb') as f:
        results = pickle.load(f)
    return {r['img_path']: torch.as_tensor(r['pred_score']) for r in results}


@pytest.fixture(scope='session')
def cls_single_test(session_dir, cls_stage2_config, cls_single):
    """tools/test.py in one process on the last checkpoint of
    ``cls_single``: (checkpoint, {image: scores}, metrics)."""
    ckpt = cls_single / f'epoch_{EPOCHS}.pth'
    out = session_dir / 'cls_single_test.pkl'
    metrics = run_tool('test', cls_stage2_config, ckpt, '--work-dir',
                       session_dir / 'cls_single_test', '--out', out)
    return ckpt, predictions(out), metrics


#: Stand-in for SLURM's srun (test_dist_slurm.py).
FAKE_SRUN = '''\
#!{python}
"""Stand-in for srun: starts the tasks locally with SLURM's variables."""
import json
import math
import os
import subprocess
import sys

NO_VALUE = {{'exclusive', 'overcommit', 'unbuffered'}}
args = sys.argv[1:]
opts = {{}}
i = 0
while i < len(args) and args[i].startswith('-'):
    arg = args[i]
    if arg.startswith('--'):
        key, eq, value = arg[2:].partition('=')
        if not eq and key not in NO_VALUE:
            i += 1
            value = args[i]
    else:
        key = arg[1:]
        i += 1
        value = args[i]
    opts[key] = value
    i += 1
cmd = args[i:]
log = os.environ.get('FAKE_SRUN_LOG')
if log:
    with open(log, 'a') as f:
        f.write(json.dumps(dict(opts=opts, cmd=cmd)) + '\\n')

per_node = opts.get('ntasks-per-node')
ntasks = opts.get('ntasks', opts.get('n'))
nodes = opts.get('nodes', opts.get('N'))
if ntasks is None:
    ntasks = int(nodes or 1) * int(per_node or 1)
ntasks = int(ntasks)
per_node = int(per_node or ntasks)
nodes = int(nodes or math.ceil(ntasks / per_node))
nodelist = os.environ.get('FAKE_SRUN_NODELIST', 'localhost')
procs = []
for task in range(ntasks):
    env = dict(os.environ)
    env.update(
        SLURM_JOB_ID='4242', SLURM_JOBID='4242', SLURM_STEP_ID='0',
        SLURM_JOB_NAME=opts.get('job-name', 'job'),
        SLURM_PROCID=str(task), SLURM_NTASKS=str(ntasks),
        SLURM_NPROCS=str(ntasks), SLURM_LOCALID=str(task % per_node),
        SLURM_NODEID=str(task // per_node), SLURM_NNODES=str(nodes),
        SLURM_JOB_NUM_NODES=str(nodes), SLURM_STEP_NUM_NODES=str(nodes),
        SLURM_STEP_NUM_TASKS=str(ntasks),
        SLURM_NTASKS_PER_NODE=str(per_node),
        SLURM_TASKS_PER_NODE=f'{{per_node}}(x{{nodes}})',
        SLURM_CPUS_PER_TASK=opts.get('cpus-per-task', '1'),
        SLURM_NODELIST=nodelist, SLURM_JOB_NODELIST=nodelist,
        SLURM_STEP_NODELIST=nodelist, SLURMD_NODENAME='localhost')
    procs.append(subprocess.Popen(cmd, env=env))
codes = [None] * ntasks
while any(c is None for c in codes):
    for k, proc in enumerate(procs):
        if codes[k] is None:
            codes[k] = proc.poll()
    if opts.get('kill-on-bad-exit') == '1' and any(codes):
        for k, proc in enumerate(procs):
            if codes[k] is None:
                proc.kill()
                codes[k] = proc.wait()
    if any(c is None for c in codes):
        import time
        time.sleep(0.2)
sys.exit(next((c for c in codes if c), 0))
'''

#: Stand-in for ``scontrol show hostname LIST`` (a list without brackets).
FAKE_SCONTROL = '#!/bin/sh\necho "$3" | tr , "\\n"\n'


@pytest.fixture
def fake_srun(tmp_path):
    """A folder with the stand-ins ``srun`` and ``scontrol``, and the log of
    ``srun``."""
    bin_dir = tmp_path / 'bin'
    write(bin_dir / 'srun', FAKE_SRUN.format(python=PYTHON))
    write(bin_dir / 'scontrol', FAKE_SCONTROL)
    for tool in bin_dir.iterdir():
        tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return bin_dir, tmp_path / 'srun.log'


# ---------------------------------------------------------------------------
# Tiny DisAlign stage 2 on top of upstream configs (test_custom_imports.py,
# test_tools_tasks.py). The user configs are read from docs/launch.md (the
# code block after each ``<!-- user-config: NAME -->`` marker), so the
# documented text is the tested text. A test-only layer on top shrinks them
# to the CPU: a tiny model (same architecture family, fewer channels) and
# tiny data made of real Fashion-MNIST objects (classification images,
# pasted segmentation scenes, LVIS-format detection scenes), 2 iterations.
# The stage-1 checkpoint is the upstream config with the same shrinking,
# randomly initialised (the tests are about loading, freezing and training
# the calibration, not accuracy).

CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
           'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
PALETTE = [[10 * i, 255 - 20 * i, 25 * i] for i in range(10)]

USER_CONFIGS = {
    'mmpretrain': 'disalign_resnet50_8xb32_in1k.py',
    'mmseg': 'disalign_fcn_r50-d8_ade20k.py',
    'mmdet': 'disalign_mask-rcnn_r50_fpn_lvis-v1.py',
}

# Test-only shrinking, applied to the stage-1 model and on top of the user
# config alike (so the stage-1 checkpoint fits the stage-2 model).
SHRINK = {
    'mmpretrain':
    '''
data_root = {root!r}
model = dict(
    backbone=dict(depth=18, in_channels=1, stem_channels=16,
                  base_channels=16),
    head=dict(num_classes=10, in_channels=128, topk=(1, )))
data_preprocessor = dict(
    num_classes=10, mean=[72.94], std=[90.02], to_rgb=False)
tiny_pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='PackInputs')
]
train_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False,
    dataset=dict(
        _delete_=True, type='LongTailListDataset', data_root=data_root,
        ann_file='fashion_mnist_lt_train.txt', data_prefix='images',
        classes=data_root + 'classes.txt', indices=32,
        pipeline=tiny_pipeline))
test_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(
        _delete_=True, type='LongTailListDataset', data_root=data_root,
        ann_file='fashion_mnist_lt_test.txt', data_prefix='images',
        classes=data_root + 'classes.txt', pipeline=tiny_pipeline))
''',
    'mmseg':
    '''
data_root = {root!r}
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=(64, 64)),
    backbone=dict(depth=18, stem_channels=16, base_channels=16,
                  norm_cfg=norm_cfg),
    decode_head=dict(in_channels=128, channels=32, num_classes=10,
                     norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=64, channels=16, num_classes=10,
                        norm_cfg=norm_cfg))
metainfo = dict(classes={classes!r}, palette={palette!r})
tiny_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(
        _delete_=True, type='BaseSegDataset', data_root=data_root,
        metainfo=metainfo, reduce_zero_label=True,
        data_prefix=dict(img_path='images/training',
                         seg_map_path='annotations/training'),
        pipeline=tiny_pipeline))
test_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(
        _delete_=True, type='BaseSegDataset', data_root=data_root,
        metainfo=metainfo, reduce_zero_label=True,
        data_prefix=dict(img_path='images/validation',
                         seg_map_path='annotations/validation'),
        pipeline=tiny_pipeline))
''',
    'mmdet':
    '''
data_root = {root!r}
model = dict(
    backbone=dict(depth=18, base_channels=16, init_cfg=None),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=dict(in_channels=32, fc_out_channels=64, num_classes=10),
        mask_roi_extractor=dict(out_channels=32),
        mask_head=dict(num_convs=2, in_channels=32, conv_out_channels=32,
                       num_classes=10)),
    test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=100)))
tiny_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='PackDetInputs')
]
tiny_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor'))
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(
        dataset=dict(
            data_root=data_root,
            ann_file='annotations/lvis_fmnist_train.json',
            metainfo=dict(classes={classes!r}), indices=4,
            pipeline=tiny_train_pipeline)))
test_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(
        data_root=data_root, ann_file='annotations/lvis_fmnist_val.json',
        metainfo=dict(classes={classes!r}), pipeline=tiny_test_pipeline))
test_evaluator = dict(ann_file=data_root + 'annotations/lvis_fmnist_val.json')
''',
}

# Test-only stage-2 settings on top: stage-1 weights, class counts of the
# tiny data, 2 iterations, no validation.
STAGE2 = {
    'mmpretrain':
    '''
load_from = {load_from!r}
model = dict(head=dict(loss=dict(class_freq={freq!r}, num_classes=10)))
train_cfg = dict(max_epochs=1, val_interval=100)
default_hooks = dict(logger=dict(interval=1))
''',
    'mmseg':
    '''
load_from = {load_from!r}
model = dict(
    decode_head=dict(loss_decode=dict(class_freq={freq!r}, num_classes=10)))
train_cfg = dict(max_iters=2, val_interval=100)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=2))
''',
    'mmdet':
    '''
load_from = {load_from!r}
model = dict(
    roi_head=dict(
        bbox_head=dict(loss_cls=dict(class_freq={freq!r}, num_classes=10))))
train_cfg = dict(max_epochs=1, val_interval=100)
default_hooks = dict(logger=dict(interval=1))
''',
}
NO_VAL = '''
val_dataloader = None
val_cfg = None
val_evaluator = None
'''
FINAL_CKPT = {
    'mmpretrain': 'epoch_1.pth',
    'mmseg': 'iter_2.pth',
    'mmdet': 'epoch_1.pth'
}


def user_config(name):
    """The python block after ``<!-- user-config: NAME -->`` in the docs."""
    text = (REPO / 'docs' / 'launch.md').read_text()
    match = re.search(
        r'<!-- user-config: ' + re.escape(name) + r' -->\s*```python\n'
        r'(.*?)```', text, re.S)
    assert match, f'docs/launch.md has no user config {name}'
    return match.group(1)


def build_data(root, task):
    """Tiny data of the task; returns the training class counts."""
    if task == 'mmpretrain':
        from disalign_demo.fashion_mnist_lt import build_fashion_mnist_lt
        meta = build_fashion_mnist_lt(
            str(root), ratio=10, seed=0, max_per_class=16, test_per_class=1)
        return meta['train_counts']
    if task == 'mmseg':
        import runpy
        builder = runpy.run_path(
            str(REPO / 'tools/dataset_converters/fmnist_ade_scenes.py'),
            run_name='fmnist_ade_scenes')['build_fmnist_scenes']
        meta = builder(
            str(root), num_train=8, num_val=6, imbalance=10.0, seed=2)
        return meta['splits']['training']['pixels']
    from disalign_demo.fmnist_lvis import build_fmnist_lvis
    result = build_fmnist_lvis(
        str(root), n_max=6, imbalance_ratio=3, val_per_class=1, seed=0)
    return result['stats']['image_count']


def build_stage1_checkpoint(cfg_path, out):
    """The upstream model of ``cfg_path``, randomly initialised, saved as
    an mmengine checkpoint."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(str(cfg_path))
    init_default_scope(cfg.default_scope)
    registry = importlib.import_module(f'{cfg.default_scope}.registry')
    torch.manual_seed(0)
    model = registry.MODELS.build(cfg.model)
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), str(out))
    return model.state_dict()


@pytest.fixture(scope='session', params=['mmpretrain', 'mmseg', 'mmdet'])
def task(request, tmp_path_factory):
    """Data, stage-1 checkpoint and configs of one library."""
    name = request.param
    pytest.importorskip(name)
    importlib.import_module({
        'mmpretrain': 'mmdisalign.cls',
        'mmseg': 'mmdisalign.seg',
        'mmdet': 'mmdisalign.det'
    }[name])
    if not osp.isfile(osp.join(FMNIST_DIR, 'train-images-idx3-ubyte.gz')):
        pytest.skip('needs the Debian package dataset-fashion-mnist')
    folder = tmp_path_factory.mktemp(name)
    freq = build_data(folder / 'data', name)
    assert len(freq) == 10 and min(freq) > 0, freq
    shrink = SHRINK[name].format(
        root=f'{folder}/data/', classes=CLASSES, palette=PALETTE)
    user_text = user_config(USER_CONFIGS[name])
    upstream = re.search(r"^_base_ = '([^']+)'", user_text, re.M).group(1)
    write(folder / USER_CONFIGS[name], user_text)
    stage1_cfg = write(folder / 'tiny_stage1.py',
                       f'_base_ = {upstream!r}\n' + shrink)
    stage1 = build_stage1_checkpoint(stage1_cfg, folder / 'stage1.pth')
    # Separate layers: a config file is Python, so a second `model = ...`
    # in the same file would replace the first instead of merging.
    write(folder / 'tiny_user.py',
          f'_base_ = {"./" + USER_CONFIGS[name]!r}\n' + shrink)
    stage2_cfg = write(
        folder / 'tiny_stage2.py', "_base_ = './tiny_user.py'\n" +
        STAGE2[name].format(load_from=str(folder / 'stage1.pth'), freq=freq) +
        NO_VAL)
    return dict(
        name=name,
        folder=folder,
        stage1=stage1,
        config=stage2_cfg,
        upstream=upstream)


def assert_disalign_checkpoint(ckpt, stage1):
    """Frozen part = stage 1 exactly; the calibration new and trained."""
    state = load(ckpt)['state_dict']
    calib = calibration(state)
    assert calib, 'no calibration in the checkpoint'
    assert not set(calib) & set(stage1)
    for key, value in frozen(state).items():
        assert torch.equal(value, stage1[key]), key
    betas = [v for k, v in calib.items() if k.endswith('.beta')]
    assert betas and max(b.abs().max().item() for b in betas) > 0


@pytest.fixture(scope='session')
def h():
    """The helpers and constants above, for the test modules (which must not
    import this file)."""
    import types
    names = ('REPO', 'TOOLS', 'PYTHON', 'STAGE1_CONFIG', 'STAGE2_CONFIG',
             'NUM_TRAIN', 'TOTAL_BATCH', 'EPOCHS', 'ITERS', 'ATOL',
             'load_tool', 'run_tool', 'write', 'load', 'calibration', 'frozen',
             'max_abs_diff', 'tool_env', 'run', 'check_ok', 'stage2_config',
             'assert_stage2_result', 'free_port', 'probes',
             'assert_matches_single', 'predictions', 'user_config',
             'assert_disalign_checkpoint', 'FINAL_CKPT', 'USER_CONFIGS')
    return types.SimpleNamespace(**{n: globals()[n] for n in names})
