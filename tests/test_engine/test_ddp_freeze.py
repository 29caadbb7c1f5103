"""DisAlignFreezeHook under DistributedDataParallel: 2 CPU processes, gloo.

The Runner wraps the model in DDP in ``__init__``, before the hook freezes
anything, so DDP's reducer would wait forever for the gradients of the
frozen parameters. The hook rebuilds the wrapper; without that (negative
control), the second iteration fails.
"""
import datetime
import logging
import os
import socket
import sys
import uuid

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset

NUM_CLASSES, WIDTH = 3, 4
CALIB = 'head.calibration'
FROZEN = [
    'backbone.0.weight', 'backbone.0.bias', 'backbone.1.weight',
    'backbone.1.bias', 'head.fc.weight', 'head.fc.bias',
    'backbone.1.running_mean', 'backbone.1.running_var',
    'backbone.1.num_batches_tracked'
]
TRAINABLE = [
    f'{CALIB}.alpha', f'{CALIB}.beta', f'{CALIB}.confidence.fc.weight',
    f'{CALIB}.confidence.bn.weight', f'{CALIB}.confidence.bn.bias'
]


def build_model(with_calibration):
    """Conv + BN backbone, linear head, optional DisAlign calibration."""
    from mmengine.model import BaseModel

    from mmdisalign.models.calibration import DisAlignCalibration

    class ToyClassifier(BaseModel):

        def __init__(self):
            super().__init__()
            self.backbone = nn.Sequential(
                nn.Conv2d(3, WIDTH, 3, padding=1), nn.BatchNorm2d(WIDTH),
                nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.head = nn.Module()
            self.head.fc = nn.Linear(WIDTH, NUM_CLASSES)
            if with_calibration:
                self.head.calibration = DisAlignCalibration(
                    NUM_CLASSES, WIDTH, confidence_norm_cfg=dict(type='BN'))

        def forward(self, inputs, data_samples=None, mode='tensor'):
            feats = self.backbone(inputs)
            logits = self.head.fc(feats)
            if with_calibration:
                logits = self.head.calibration(logits, feats)
            if mode == 'loss':
                return dict(loss=F.cross_entropy(logits, data_samples))
            return logits

    return ToyClassifier()


class ToyDataset(Dataset):

    def __init__(self, n=16):
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, 8, 8, generator=gen)
        self.y = self.x.mean((2, 3)).argmax(1)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return dict(inputs=self.x[i], data_samples=self.y[i])


def _run_stage2(work_dir, ckpt_path, tag):
    from mmengine.runner import Runner

    from mmdisalign.engine.hooks import DisAlignFreezeHook
    model = build_model(with_calibration=True)
    runner = Runner(
        model=model,
        work_dir=os.path.join(work_dir, tag),
        train_dataloader=dict(
            dataset=ToyDataset(),
            sampler=dict(type='InfiniteSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            batch_size=4,
            num_workers=0),
        train_cfg=dict(by_epoch=False, max_iters=4),
        optim_wrapper=dict(
            optimizer=dict(
                type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4)),
        default_hooks=dict(checkpoint=None),
        custom_hooks=[DisAlignFreezeHook()],
        load_from=ckpt_path,
        launcher='pytorch',
        randomness=dict(seed=0),
        experiment_name=f'ddp_{tag}_{uuid.uuid4().hex}',
        # DDP of a CPU module needs device_ids=None (the Runner's default
        # is [LOCAL_RANK], which is for GPUs).
        cfg=dict(
            model_wrapper_cfg=dict(
                type='MMDistributedDataParallel', device_ids=None)))
    return runner, model


def _worker(rank, world_size, port, work_dir, ckpt_path):
    os.environ.update(
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    # Initialised here: mmengine's pytorch launcher would call
    # torch.cuda.set_device. The Runner skips init_dist when a group exists.
    dist.init_process_group(
        'gloo',
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=60))
    from mmengine.logging import MMLogger

    import mmdisalign.engine.hooks.freeze_hook as freeze_hook
    result = {}

    runner, model = _run_stage2(work_dir, ckpt_path, 'rewrap')
    first_wrapper = runner.model
    result['wrapped_before'] = first_wrapper._get_ddp_logging_data(
    )['num_parameter_tensors']
    runner.train()
    new = runner.model
    opt_ids = {
        id(p)
        for g in runner.optim_wrapper.param_groups
        for p in g['params']
    }
    result.update(
        replaced=new is not first_wrapper,
        wrapper_type=type(new).__name__,
        same_module=new.module is model,
        device_ids=new.device_ids,
        find_unused=new.find_unused_parameters,
        wrapped_after=new._get_ddp_logging_data()['num_parameter_tensors'],
        optimizer_holds_model_params=opt_ids == {
            id(p)
            for p in model.parameters()
        },
        state={
            k: v.clone()
            for k, v in model.state_dict().items()
        })
    del runner, first_wrapper, new
    MMLogger._instance_dict.clear()

    # Negative control: the same run without re-wrapping.
    freeze_hook.rewrap_ddp = lambda runner: False
    runner, model = _run_stage2(work_dir, ckpt_path, 'no_rewrap')
    try:
        runner.train()
        result['no_rewrap_error'] = None
    except RuntimeError as e:
        result['no_rewrap_error'] = str(e)
    torch.save(result, os.path.join(work_dir, f'rank{rank}.pth'))
    dist.destroy_process_group()
    # A normal interpreter exit with torch, mmengine and mmcv loaded takes
    # 10+ s here (library destructors); the results are saved, so skip it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def ddp_results(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('ddp')
    torch.manual_seed(1)
    stage1 = build_model(with_calibration=False).state_dict()
    # Non-trivial BN statistics, as a trained stage 1 would have.
    stage1['backbone.1.running_mean'].uniform_(-1, 1)
    stage1['backbone.1.running_var'].uniform_(0.5, 2)
    stage1['backbone.1.num_batches_tracked'].fill_(100)
    ckpt_path = str(work_dir / 'stage1.pth')
    torch.save(dict(state_dict=stage1, meta=dict(iter=100)), ckpt_path)
    mp.spawn(
        _worker,
        args=(2, _free_port(), str(work_dir), ckpt_path),
        nprocs=2,
        join=True)
    logging.shutdown()
    return stage1, [
        torch.load(work_dir / f'rank{r}.pth', weights_only=False)
        for r in range(2)
    ]


def test_ddp_rewrapped_with_same_settings(ddp_results):
    _, results = ddp_results
    for r in results:
        assert r['replaced'] and r['same_module']
        assert r['wrapper_type'] == 'MMDistributedDataParallel'
        assert r['device_ids'] is None and r['find_unused'] is False
        # DDP registered 11 parameter tensors at Runner.__init__, and only
        # the 5 trainable ones after the hook.
        assert (r['wrapped_before'], r['wrapped_after']) == (11, 5)
        assert r['optimizer_holds_model_params']


def test_ddp_calibration_synced_and_frozen_unchanged(ddp_results):
    stage1, (r0, r1) = ddp_results
    for key in TRAINABLE:
        assert torch.equal(r0['state'][key], r1['state'][key]), key
    assert not torch.equal(r0['state'][f'{CALIB}.alpha'], torch.zeros(3))
    assert not torch.equal(r0['state'][f'{CALIB}.beta'], torch.zeros(3))
    for r in (r0, r1):
        for key in FROZEN:
            assert torch.equal(r['state'][key], stage1[key]), key


def test_ddp_without_rewrap_fails(ddp_results):
    _, results = ddp_results
    for r in results:
        assert r['no_rewrap_error'] is not None
        assert 'Expected to have finished reduction' in r['no_rewrap_error']
