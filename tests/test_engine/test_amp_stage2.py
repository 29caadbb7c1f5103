"""Stage 2 with ``optim_wrapper=dict(type='AmpOptimWrapper',
dtype='bfloat16')`` on mmengine's Runner, on the CPU.

mmengine 0.10.7's ``AmpOptimWrapper.__init__`` asserts that CUDA (or an
NPU / MLU / MUSA device) is available; everything else of it works on the
CPU: its ``optim_context`` enters mmengine's ``autocast`` (CPU: bfloat16)
and its ``torch.cuda.amp.GradScaler`` disables itself without CUDA
(bfloat16 needs no loss scaling). The test lifts only that assertion
(``is_cuda_available`` in the wrapper's module) and trains a tiny
classifier (DisAlignLinearClsHead + GRW loss, DisAlignFreezeHook) for two
epochs with AMP and with the default float32 ``OptimWrapper`` from the
same stage-1 checkpoint.
"""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.optim.optimizer import amp_optimizer_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.runner.checkpoint import save_checkpoint
from PIL import Image

import mmdisalign.cls  # noqa: F401

COUNTS = (13, 8, 5)
PREPROCESSOR = dict(num_classes=3, mean=[100.], std=[60.], to_rgb=False)


def _write_images(root, counts, rng):
    lines = []
    for label, n in enumerate(counts):
        for i in range(n):
            name = f'{label}_{i}.png'
            img = rng.integers(0, 120, (8, 8)) + 60 * label
            Image.fromarray(img.astype(np.uint8)).save(osp.join(root, name))
            lines.append(f'{name} {label}')
    with open(osp.join(root, 'train.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')


def _model(head_type):
    head = dict(
        type=head_type,
        num_classes=3,
        in_channels=8,
        loss=dict(type='CrossEntropyLoss'))
    if head_type == 'DisAlignLinearClsHead':
        head['loss'] = dict(
            type='GRWCrossEntropyLoss', class_freq=list(COUNTS), rho=1.2)
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
    root = str(tmp_path_factory.mktemp('amp_stage2'))
    _write_images(root, COUNTS, np.random.default_rng(0))
    init_default_scope('mmpretrain')
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    stage1 = MODELS.build(
        dict(_model('LinearClsHead'), data_preprocessor=PREPROCESSOR))
    stage1.init_weights()
    with torch.no_grad():
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
            train_dataloader=dict(
                batch_size=5,
                num_workers=0,
                dataset=dict(
                    type='CustomDataset',
                    data_root=root,
                    ann_file='train.txt',
                    data_prefix='',
                    classes=['a', 'b', 'c'],
                    pipeline=[
                        dict(type='LoadImageFromFile', color_type='grayscale'),
                        dict(type='PackInputs')
                    ]),
                sampler=dict(type='DefaultSampler', shuffle=True)),
            optim_wrapper=dict(
                optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
            train_cfg=dict(by_epoch=True, max_epochs=2),
            custom_hooks=[dict(type='DisAlignFreezeHook')],
            default_hooks=dict(checkpoint=dict(type='CheckpointHook')),
            load_from=ckpt,
            randomness=dict(seed=3),
            log_level='WARNING'))
    return root, cfg, stage1.state_dict()


class FirstState(Hook):
    """The calibration as the first training iteration gets it."""

    priority = 'LOWEST'

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter == 0:
            self.state = {
                k: v.detach().clone()
                for k, v in runner.model.head.calibration.state_dict().items()
            }


def _train(cfg, work_dir):
    """Train; return the final state dict and the output dtypes of the
    classifier (``head.fc``), the calibration and the loss per step."""
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = work_dir
    cfg.experiment_name = osp.basename(work_dir)
    runner = Runner.from_cfg(cfg)
    head = runner.model.head
    dtypes = []
    for name in ('fc', 'calibration', 'loss_module'):
        getattr(head, name).register_forward_hook(
            lambda mod, args, out, name=name: dtypes.append((name, out.dtype)))
    first = FirstState()
    runner.register_hook(first)
    runner.train()
    state = {
        k: v.detach().clone()
        for k, v in runner.model.state_dict().items()
    }
    return state, dtypes, type(runner.optim_wrapper).__name__, first.state


def test_amp_bf16_stage2_on_the_runner(setup, monkeypatch):
    root, cfg, stage1 = setup
    ref, ref_dtypes, _, init = _train(cfg, osp.join(root, 'fp32'))
    amp_cfg = copy.deepcopy(cfg)
    amp_cfg.optim_wrapper.update(type='AmpOptimWrapper', dtype='bfloat16')
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available',
                        lambda: True)
    amp, dtypes, wrapper, amp_init = _train(amp_cfg, osp.join(root, 'amp'))
    assert wrapper == 'AmpOptimWrapper'
    steps = 2 * -(-sum(COUNTS) // 5)
    assert ref_dtypes == [('fc', torch.float32),
                          ('calibration', torch.float32),
                          ('loss_module', torch.float32)] * steps
    # the stage-1 classifier ran in bfloat16, calibration and loss in fp32
    assert dtypes == [('fc', torch.bfloat16), ('calibration', torch.float32),
                      ('loss_module', torch.float32)] * steps
    # the frozen network is untouched, bit for bit
    for key, value in stage1.items():
        torch.testing.assert_close(amp[key], value, rtol=0, atol=0, msg=key)
    # the calibration trained, from the same start, close to float32
    for key, start in init.items():
        torch.testing.assert_close(amp_init[key], start, rtol=0, atol=0)
        moved = (ref[f'head.calibration.{key}'] - start).norm()
        diff = (amp[f'head.calibration.{key}'] -
                ref[f'head.calibration.{key}']).norm()
        assert moved > 1e-3 and diff <= 0.02 * moved, (key, diff, moved)
