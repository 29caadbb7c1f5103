"""DataSizeCheckHook: a data set smaller than the number of processes (or
empty) stops the run before its first batch."""
import types
import uuid

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.registry import HOOKS
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mmdisalign.engine.hooks import DataSizeCheckHook


def _fake_runner(world_size, train=None, val=None, test=None):
    """What the hook reads: the public data loaders and ``val_loop``."""

    def loader(length):
        if length is None:
            return None
        return types.SimpleNamespace(dataset=[0] * length)

    return types.SimpleNamespace(
        world_size=world_size,
        train_dataloader=loader(train),
        val_loop=None if val is None else object(),
        val_dataloader=loader(val),
        test_dataloader=loader(test))


def test_data_size_check():
    hook = HOOKS.build(dict(type='DataSizeCheckHook'))
    assert isinstance(hook, DataSizeCheckHook)
    assert hook.priority == 'VERY_HIGH'
    hook.before_train(_fake_runner(2, train=2, val=5))
    hook.before_train(_fake_runner(2, train=2))  # no validation
    hook.before_test(_fake_runner(1, test=1))
    hook.before_test(_fake_runner(8, test=8))
    with pytest.raises(
            ValueError,
            match='train_dataloader.dataset has 1 sample.*2 '
            'processes.*at most 1 processes'):
        hook.before_train(_fake_runner(2, train=1, val=10))
    with pytest.raises(ValueError, match='test_dataloader.dataset has 3'):
        hook.before_test(_fake_runner(4, test=3))
    with pytest.raises(ValueError, match='val_dataloader.dataset is empty'):
        hook.before_train(_fake_runner(1, train=5, val=0))
    with pytest.raises(ValueError, match='val_dataloader.dataset has 1'):
        hook.before_val(_fake_runner(2, val=1))


class _Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.fc(torch.stack(inputs))
        if mode == 'loss':
            return dict(loss=out.sum())
        return out


class _Empty(Dataset):

    def __len__(self):
        return 0

    def __getitem__(self, i):
        raise IndexError(i)


def test_empty_train_set_stops_the_runner(tmp_path):
    """A real Runner: the hook raises before the first iteration."""
    runner = Runner(
        model=_Toy(),
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=_Empty(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            batch_size=2,
            num_workers=0),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(checkpoint=None),
        custom_hooks=[dict(type='DataSizeCheckHook')],
        experiment_name=f'size_check_{uuid.uuid4().hex}')
    with pytest.raises(ValueError, match='train_dataloader.dataset is empty'):
        runner.train()
