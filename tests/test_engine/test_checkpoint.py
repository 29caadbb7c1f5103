"""mmengine checkpoints load on torch >= 2.6 through mmdisalign.compat.

torch >= 2.6 defaults ``torch.load`` to ``weights_only=True`` and mmengine
0.10.7 does not pass ``weights_only``; a checkpoint saved by the Runner
(``message_hub`` holds ``HistoryBuffer`` objects with numpy arrays) then
fails to load. These tests use a real Runner checkpoint, with the escape
hatch environment variables unset.
"""
import importlib
import logging
import os
import pickle
import uuid

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer, MMLogger
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner import checkpoint as mm_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint
from torch.utils.data import Dataset

import mmdisalign
from mmdisalign import compat

ENV_VARS = ('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD',
            'TORCH_FORCE_WEIGHTS_ONLY_LOAD')


class TinyNet(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.bn = nn.BatchNorm1d(2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.bn(self.fc(inputs))
        if mode == 'loss':
            return dict(loss=F.cross_entropy(out, data_samples))
        return out


class TinySet(Dataset):

    def __init__(self):
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(12, 4, generator=gen)
        self.y = (self.x[:, 0] > 0).long()

    def __len__(self):
        return 12

    def __getitem__(self, i):
        return dict(inputs=self.x[i], data_samples=self.y[i])


class StartProbe(Hook):

    def before_train(self, runner):
        self.start_iter = runner.iter
        self.start_state = {
            k: v.clone()
            for k, v in runner.model.state_dict().items()
        }


def make_runner(work_dir, max_iters, **kwargs):
    return Runner(
        model=TinyNet(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=TinySet(),
            # InfiniteSampler: the default one makes the iteration loop
            # sleep 2 s at every dataloader restart.
            sampler=dict(type='InfiniteSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            batch_size=4,
            num_workers=0),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(
            optimizer=dict(
                type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=3,
                            by_epoch=False)),
        randomness=dict(seed=0),
        experiment_name=f'tiny_{uuid.uuid4().hex}',
        **kwargs)


@pytest.fixture(autouse=True)
def _no_env_escape_hatch(monkeypatch):
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    yield
    MMLogger._instance_dict.clear()
    logging.shutdown()


@pytest.fixture(scope='module')
def runner_checkpoint(tmp_path_factory):
    """An mmengine checkpoint written by the Runner after 3 iterations."""
    work_dir = tmp_path_factory.mktemp('ckpt')
    runner = make_runner(work_dir, 3)
    runner.train()
    MMLogger._instance_dict.clear()
    state = {k: v.clone() for k, v in runner.model.state_dict().items()}
    return str(work_dir / 'iter_3.pth'), state


def test_torch_defaults_to_weights_only():
    assert tuple(int(v) for v in torch.__version__.split('.')[:2]) >= (2, 6)
    for var in ENV_VARS:
        assert var not in os.environ


def test_without_fix_the_checkpoint_does_not_load(runner_checkpoint):
    """Plain torch.load and mmengine's own local loader both fail."""
    path, _ = runner_checkpoint
    with pytest.raises(pickle.UnpicklingError, match='weights_only'):
        torch.load(path)
    with pytest.raises(pickle.UnpicklingError, match='weights_only'):
        mm_checkpoint.load_from_local(path, map_location='cpu')


def test_local_scheme_uses_compat_loader(runner_checkpoint):
    path, state = runner_checkpoint
    assert CheckpointLoader._get_checkpoint_loader(path) is \
        compat.load_from_local
    ckpt = _load_checkpoint(path, map_location='cpu')
    assert set(ckpt) >= {'meta', 'state_dict', 'message_hub', 'optimizer'}
    assert ckpt['meta']['iter'] == 3
    # The objects that weights_only=True rejects.
    buffers = ckpt['message_hub']['log_scalars']
    assert isinstance(buffers['train/loss'], HistoryBuffer)
    assert len(buffers['train/loss'].data[0]) == 3
    for key, value in state.items():
        assert torch.equal(ckpt['state_dict'][key], value), key


def test_map_location_semantics(runner_checkpoint):
    path, state = runner_checkpoint
    ckpt = compat.load_from_local(path, map_location='meta')
    assert ckpt['state_dict']['fc.weight'].device.type == 'meta'
    seen = []

    def to_cpu(storage, location):
        seen.append(location)
        return storage

    ckpt = compat.load_from_local(path, map_location=to_cpu)
    assert seen and set(seen) == {'cpu'}
    assert torch.equal(ckpt['state_dict']['fc.weight'], state['fc.weight'])


def test_home_expansion(runner_checkpoint, tmp_path, monkeypatch):
    path, state = runner_checkpoint
    monkeypatch.setenv('HOME', str(tmp_path))
    os.symlink(path, tmp_path / 'stage1.pth')
    ckpt = _load_checkpoint('~/stage1.pth', map_location='cpu')
    assert torch.equal(ckpt['state_dict']['bn.running_var'],
                       state['bn.running_var'])


def test_missing_file_error(tmp_path):
    missing = str(tmp_path / 'no_such.pth')
    with pytest.raises(FileNotFoundError) as info:
        _load_checkpoint(missing)
    assert str(info.value) == (
        f'Checkpoint file {missing!r} does not exist. Check the path given '
        'to `load_from`, `resume` or `init_cfg.checkpoint`.')
    with pytest.raises(FileNotFoundError, match='is a directory'):
        _load_checkpoint(str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"resolved to '/"):
        _load_checkpoint('no_such_relative.pth')


def test_runner_load_from_missing_file(tmp_path):
    missing = str(tmp_path / 'stage1' / 'epoch_90.pth')
    runner = make_runner(tmp_path, 3, load_from=missing)
    with pytest.raises(FileNotFoundError, match='load_from'):
        runner.train()


def test_runner_load_from(runner_checkpoint, tmp_path):
    path, state = runner_checkpoint
    runner = make_runner(tmp_path, 3, load_from=path)
    # What Runner.train() does before the first iteration.
    runner.load_or_resume()
    for key, value in runner.model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_runner_resume(runner_checkpoint, tmp_path):
    path, state = runner_checkpoint
    probe = StartProbe()
    runner = make_runner(
        tmp_path, 6, load_from=path, resume=True, custom_hooks=[probe])
    runner.train()
    assert probe.start_iter == 3  # resumed after iteration 3
    assert runner.iter == 6
    # The message hub was resumed too: 3 + 3 losses logged.
    loss = runner.message_hub.get_scalar('train/loss')
    assert len(loss.data[0]) == 6
    assert (tmp_path / 'iter_6.pth').is_file()
    # Training went on from the checkpoint's weights.
    for key, value in state.items():
        assert torch.equal(probe.start_state[key], value), key


def test_install_is_idempotent(runner_checkpoint):
    path, _ = runner_checkpoint
    before = dict(CheckpointLoader._schemes)
    compat.install_local_checkpoint_loader()
    compat.install_local_checkpoint_loader()
    assert CheckpointLoader._schemes == before
    reloaded = importlib.reload(compat)
    assert list(CheckpointLoader._schemes) == list(before)
    assert CheckpointLoader._schemes[''] is reloaded.load_from_local
    assert _load_checkpoint(path)['meta']['iter'] == 3
    assert mmdisalign.compat is reloaded
