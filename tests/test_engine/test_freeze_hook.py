"""Tests of DisAlignFreezeHook with a real mmengine Runner on the CPU.

Stage 1 trains a toy classifier (conv + BN backbone, linear head) and saves
a checkpoint with the Runner's CheckpointHook; stage 2 loads it through
``load_from``, adds a DisAlignCalibration and trains with the hook.
"""
import copy
import logging
import re
import uuid

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric, Evaluator
from mmengine.hooks import Hook
from mmengine.logging import MMLogger
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import mmdisalign  # noqa: F401  (registers the hook, installs the loader)
from mmdisalign.engine.hooks import DisAlignFreezeHook
from mmdisalign.engine.hooks.freeze_hook import plan_freeze
from mmdisalign.models.calibration import DisAlignCalibration

NUM_CLASSES, WIDTH = 3, 4
CALIB = 'head.calibration'
# Parameters of the toy model: backbone conv 3->4 (3x3) + BN(4), head fc
# 4->3, calibration alpha(3), beta(3), confidence fc 4->1 (no bias) + BN1d.
FROZEN = {
    'backbone.0.weight': 4 * 3 * 3 * 3,
    'backbone.0.bias': 4,
    'backbone.1.weight': 4,
    'backbone.1.bias': 4,
    'head.fc.weight': 3 * 4,
    'head.fc.bias': 3,
}
TRAINABLE = {
    f'{CALIB}.alpha': 3,
    f'{CALIB}.beta': 3,
    f'{CALIB}.confidence.fc.weight': 4,
    f'{CALIB}.confidence.bn.weight': 1,
    f'{CALIB}.confidence.bn.bias': 1,
}
BN_BUFFERS = [
    'backbone.1.running_mean', 'backbone.1.running_var',
    'backbone.1.num_batches_tracked'
]


class ToyClassifier(BaseModel):
    """Conv + BN backbone, linear head, optional DisAlign calibration.

    It records the mode of the backbone BN and of the calibration's
    confidence BN at every training forward.
    """

    def __init__(self, with_calibration=False, width=WIDTH):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width),
            nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Module()
        self.head.fc = nn.Linear(width, NUM_CLASSES)
        if with_calibration:
            self.head.calibration = DisAlignCalibration(
                NUM_CLASSES, width, confidence_norm_cfg=dict(type='BN'))
        self.train_modes = []

    def forward(self, inputs, data_samples=None, mode='tensor'):
        feats = self.backbone(inputs)
        logits = self.head.fc(feats)
        calib = getattr(self.head, 'calibration', None)
        if calib is not None:
            logits = calib(logits, feats)
        if mode == 'loss':
            self.train_modes.append(
                (self.backbone[1].training,
                 None if calib is None else calib.confidence.bn.training))
            return dict(loss=F.cross_entropy(logits, data_samples))
        if mode == 'predict':
            return [
                dict(pred=p, gt=g)
                for p, g in zip(logits.argmax(1), data_samples)
            ]
        return logits


class ToyDataset(Dataset):
    """16 random 8x8 RGB images whose label depends on the mean colour."""

    def __init__(self, n=16, seed=0):
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 3, 8, 8, generator=gen)
        self.y = self.x.mean((2, 3)).argmax(1)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return dict(inputs=self.x[i], data_samples=self.y[i])


class ToyAccuracy(BaseMetric):

    def process(self, data_batch, data_samples):
        self.results.extend(float(d['pred'] == d['gt']) for d in data_samples)

    def compute_metrics(self, results):
        return dict(acc=sum(results) / len(results))


class ModeProbe(Hook):
    """Records the backbone BN mode before the freeze hook's
    ``before_train_iter`` (HIGHEST priority), i.e. as the loop left it, and
    counts validation runs."""
    priority = 'HIGHEST'

    def __init__(self):
        self.before_iter = []
        self.num_val = 0

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.before_iter.append(runner.model.backbone[1].training)

    def after_val_epoch(self, runner, metrics=None):
        self.num_val += 1


def make_runner(work_dir,
                model,
                *,
                by_epoch=False,
                length=6,
                custom_hooks=(),
                with_val=False,
                **kwargs):
    if by_epoch:
        train_cfg = dict(by_epoch=True, max_epochs=length)
        ckpt = dict(type='CheckpointHook', interval=length, by_epoch=True)
    else:
        train_cfg = dict(by_epoch=False, max_iters=length)
        ckpt = dict(type='CheckpointHook', interval=length, by_epoch=False)
    loader = dict(
        dataset=ToyDataset(),
        # InfiniteSampler for iterations: with the default one the loop
        # sleeps 2 s at every dataloader restart.
        sampler=dict(
            type='DefaultSampler' if by_epoch else 'InfiniteSampler',
            shuffle=True),
        collate_fn=dict(type='default_collate'),
        batch_size=4,
        num_workers=0)
    val = {}
    if with_val:
        train_cfg['val_interval'] = 2
        val = dict(
            val_dataloader=dict(
                loader, sampler=dict(type='DefaultSampler', shuffle=False)),
            val_cfg=dict(),
            val_evaluator=Evaluator([ToyAccuracy()]))
    return Runner(
        model=model,
        work_dir=str(work_dir),
        train_dataloader=loader,
        train_cfg=train_cfg,
        optim_wrapper=dict(
            optimizer=dict(
                type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4)),
        default_hooks=dict(checkpoint=ckpt),
        custom_hooks=list(custom_hooks),
        randomness=dict(seed=0),
        experiment_name=f'toy_{uuid.uuid4().hex}',
        # What Runner.from_cfg passes: the hook reads `load_from` and
        # `resume` from the config, for its messages.
        cfg=dict(
            load_from=kwargs.get('load_from'),
            resume=kwargs.get('resume', False)),
        **val,
        **kwargs)


@pytest.fixture(autouse=True)
def _clear_loggers():
    yield
    MMLogger._instance_dict.clear()
    logging.shutdown()


@pytest.fixture(scope='module')
def stage1(tmp_path_factory):
    """A stage-1 checkpoint (6 iterations) and its state dict."""
    work_dir = tmp_path_factory.mktemp('stage1')
    runner = make_runner(work_dir, ToyClassifier())
    runner.train()
    path = work_dir / 'iter_6.pth'
    assert path.is_file()
    state = torch.load(path, weights_only=False)['state_dict']
    # Stage 1 really trained: the BN statistics left their init.
    assert not torch.equal(state['backbone.1.running_mean'], torch.zeros(4))
    assert state['backbone.1.num_batches_tracked'].item() == 6
    MMLogger._instance_dict.clear()
    return str(path), state


def final_state(runner):
    return {
        k: v.detach().clone()
        for k, v in runner.model.state_dict().items()
    }


def read_log(runner):
    files = [
        h.baseFilename for h in runner.logger.handlers
        if isinstance(h, logging.FileHandler)
    ]
    with open(files[0]) as f:
        return f.read()


def assert_frozen_identical(state, stage1_state, keys):
    for key in keys:
        assert torch.equal(state[key], stage1_state[key]), key


@pytest.mark.parametrize('by_epoch', [False, True])
def test_stage2_trains_only_calibration(tmp_path, stage1, by_epoch):
    path, s1 = stage1
    model = ToyClassifier(with_calibration=True)
    init = copy.deepcopy(model.head.calibration.state_dict())
    hook, probe = DisAlignFreezeHook(), ModeProbe()
    length = 2 if by_epoch else 8  # 2 epochs x 4 iterations = 8 iterations
    runner = make_runner(
        tmp_path,
        model,
        by_epoch=by_epoch,
        length=length,
        custom_hooks=[hook, probe],
        load_from=path)
    runner.train()
    state = final_state(runner)

    # Every frozen parameter and BN statistic is the stage-1 one, bit for
    # bit, despite SGD momentum and weight decay.
    assert_frozen_identical(state, s1, list(FROZEN) + BN_BUFFERS)
    for name, p in model.named_parameters():
        assert p.requires_grad == (name in TRAINABLE), name
    # The calibration did train (alpha and beta start at 0).
    for key in ['alpha', 'beta', 'confidence.fc.weight']:
        assert not torch.equal(state[f'{CALIB}.{key}'], init[key]), key
    # Its confidence BN was in train mode: 8 batches were tracked.
    assert state[f'{CALIB}.confidence.bn.num_batches_tracked'].item() == 8

    # The loops call model.train(): before every iteration (IterBased) or
    # every epoch (EpochBased); the hook sets the frozen BN back to eval.
    if by_epoch:
        assert probe.before_iter == [True, False, False, False] * 2
    else:
        assert probe.before_iter == [True] * 8
    # Mode of (backbone BN, confidence BN) at each of the 8 forwards.
    assert model.train_modes == [(False, True)] * 8
    assert list(hook.plan.frozen_norms) == ['backbone.1']


def test_norm_eval_after_validation(tmp_path, stage1):
    """The val loop puts the whole model in eval mode and the iter loop
    back in train mode; the frozen BN must still be in eval at every
    training forward."""
    path, s1 = stage1
    model = ToyClassifier(with_calibration=True)
    probe = ModeProbe()
    runner = make_runner(
        tmp_path,
        model,
        length=6,
        with_val=True,
        load_from=path,
        custom_hooks=[DisAlignFreezeHook(), probe])
    runner.train()
    assert probe.num_val == 3  # after iterations 2, 4 and 6
    assert probe.before_iter == [True] * 6
    assert model.train_modes == [(False, True)] * 6
    assert_frozen_identical(final_state(runner), s1, BN_BUFFERS)


def test_freeze_norm_false_updates_statistics(tmp_path, stage1):
    path, s1 = stage1
    model = ToyClassifier(with_calibration=True)
    runner = make_runner(
        tmp_path,
        model,
        length=2,
        load_from=path,
        custom_hooks=[DisAlignFreezeHook(freeze_norm=False)])
    runner.train()
    state = final_state(runner)
    assert model.train_modes == [(True, True)] * 2
    assert_frozen_identical(state, s1, FROZEN)  # parameters stay frozen
    assert state['backbone.1.num_batches_tracked'].item() == 6 + 2
    assert not torch.equal(state['backbone.1.running_mean'],
                           s1['backbone.1.running_mean'])


def test_logged_counts(tmp_path, stage1):
    path, _ = stage1
    hook = DisAlignFreezeHook()
    runner = make_runner(
        tmp_path,
        ToyClassifier(with_calibration=True),
        length=1,
        custom_hooks=[hook],
        load_from=path)
    runner.train()
    log = read_log(runner)
    m = re.search(
        r'DisAlignFreezeHook: (\d+) trainable tensors \((\d+) elements\), '
        r'(\d+) frozen tensors \((\d+) elements\); (\d+) norm layers', log)
    assert m is not None, log
    assert [int(g) for g in m.groups()] == [
        len(TRAINABLE),
        sum(TRAINABLE.values()),  # 5 tensors, 12 elements
        len(FROZEN),
        sum(FROZEN.values()),  # 6 tensors, 135 elements
        1
    ]
    assert (sum(TRAINABLE.values()), sum(FROZEN.values())) == (12, 135)
    names = re.search(r'trainable tensors: (.*)', log).group(1)
    assert names.split(', ') == list(TRAINABLE)
    assert hook.plan.num_trainable_elements == 12
    assert hook.plan.num_frozen_elements == 135


def test_crt_pattern_retrains_classifier(tmp_path, stage1):
    """cRT: no calibration, the linear classifier is retrained."""
    path, s1 = stage1
    model = ToyClassifier()
    hook = DisAlignFreezeHook(trainable=['head.fc'])
    runner = make_runner(
        tmp_path, model, length=4, custom_hooks=[hook], load_from=path)
    runner.train()
    state = final_state(runner)
    backbone = [k for k in FROZEN if k.startswith('backbone')]
    assert_frozen_identical(state, s1, backbone + BN_BUFFERS)
    for key in ['head.fc.weight', 'head.fc.bias']:
        assert not torch.equal(state[key], s1[key]), key
    assert hook.plan.trainable == ['head.fc.weight', 'head.fc.bias']
    assert model.train_modes == [(False, None)] * 4


def test_plan_calibration_norm_and_patterns():
    model = ToyClassifier(with_calibration=True)
    plan = plan_freeze(model)
    assert plan.trainable == list(TRAINABLE)
    assert plan.frozen == list(FROZEN)
    assert plan.calibrations == [CALIB]
    assert list(plan.frozen_norms) == ['backbone.1']
    # Required from stage 1: frozen parameters + backbone BN buffers; the
    # calibration (and its BN) is not.
    assert sorted(plan.required) == sorted(list(FROZEN) + BN_BUFFERS)
    assert plan.required['backbone.0.weight'] == (4, 3, 3, 3)
    # A pattern adds to the calibration; the BN it covers leaves the frozen
    # part.
    plan = plan_freeze(model, [re.compile(r'backbone\.1\.')])
    assert plan.trainable == ['backbone.1.weight', 'backbone.1.bias'
                              ] + list(TRAINABLE)
    assert plan.frozen_norms == {}
    assert 'backbone.1.running_mean' not in plan.required


def test_error_nothing_to_train(tmp_path, stage1):
    path, s1 = stage1
    model = ToyClassifier()
    runner = make_runner(
        tmp_path,
        model,
        length=2,
        load_from=path,
        custom_hooks=[DisAlignFreezeHook()])
    with pytest.raises(ValueError, match='nothing to train in ToyClassifier'):
        runner.train()
    assert model.train_modes == []  # stopped before the first iteration
    # Parameters that do not require grad do not count as trainable.
    model = ToyClassifier()
    model.head.fc.requires_grad_(False)
    with pytest.raises(ValueError, match=r"patterns \['head.fc'\]"):
        plan_freeze(model, [re.compile('head.fc')])


def test_error_pattern_matches_nothing():
    model = ToyClassifier(with_calibration=True)
    with pytest.raises(ValueError, match=r"pattern\(s\) \['neck'\] match no"):
        plan_freeze(model, [re.compile('head'), re.compile('neck')])
    # Python's own errors
    with pytest.raises(re.error, match='missing \\)'):
        DisAlignFreezeHook(trainable=['head.('])
    with pytest.raises(TypeError, match='not iterable'):
        DisAlignFreezeHook(trainable=3)
    # A single string is one pattern.
    assert [p.pattern
            for p in DisAlignFreezeHook('head').trainable] == ['head']


def test_error_no_load_from(tmp_path):
    model = ToyClassifier(with_calibration=True)
    runner = make_runner(
        tmp_path, model, length=2, custom_hooks=[DisAlignFreezeHook()])
    with pytest.raises(ValueError, match='`load_from` is None'):
        runner.train()
    assert model.train_modes == []


def test_error_resume_without_checkpoint(tmp_path):
    runner = make_runner(
        tmp_path,
        ToyClassifier(with_calibration=True),
        length=2,
        resume=True,
        custom_hooks=[DisAlignFreezeHook()])
    with pytest.raises(ValueError, match='resume=True found no checkpoint'):
        runner.train()


def test_error_checkpoint_of_other_architecture(tmp_path):
    other = tmp_path / 'other'
    runner = make_runner(other, ToyClassifier(width=8), length=1)
    runner.train()
    MMLogger._instance_dict.clear()
    model = ToyClassifier(with_calibration=True)
    runner = make_runner(
        tmp_path,
        model,
        length=2,
        custom_hooks=[DisAlignFreezeHook()],
        load_from=str(other / 'iter_1.pth'))
    with pytest.raises(ValueError) as info:
        runner.train()
    msg = str(info.value)
    # 5 frozen parameters and the 2 BN statistics differ in shape
    # (head.fc.bias is (3,) and num_batches_tracked a scalar in both).
    assert '0 of 9 frozen tensors are missing from it and 7 have another ' \
        'shape' in msg
    assert 'backbone.0.weight (model (4, 3, 3, 3), checkpoint ' \
        '(8, 3, 3, 3))' in msg
    assert f"load_from={str(other / 'iter_1.pth')!r} [" in msg
    assert "iter=1" in msg
    assert model.train_modes == []


def test_error_most_keys_missing(tmp_path, stage1):
    _, s1 = stage1
    path = tmp_path / 'partial.pth'
    torch.save(
        {'state_dict': {
            k: s1[k]
            for k in ['head.fc.weight', 'head.fc.bias']
        }}, path)
    runner = make_runner(
        tmp_path,
        ToyClassifier(with_calibration=True),
        length=2,
        custom_hooks=[DisAlignFreezeHook()],
        load_from=str(path))
    with pytest.raises(ValueError) as info:
        runner.train()
    msg = str(info.value)
    # 9 required: 6 frozen parameters + 3 BN buffers; num_batches_tracked
    # may be absent, the other 6 backbone tensors are missing.
    assert '6 of 9 frozen tensors are missing from it and 0 have' in msg
    assert ('Missing: backbone.0.weight, backbone.0.bias, backbone.1.weight, '
            'backbone.1.bias, backbone.1.running_mean, '
            'backbone.1.running_var.') in msg
    assert '(2 tensors)' in msg

    # allow_missing lifts exactly the keys it matches.
    MMLogger._instance_dict.clear()
    runner = make_runner(
        tmp_path,
        ToyClassifier(with_calibration=True),
        length=2,
        custom_hooks=[DisAlignFreezeHook(allow_missing=[r'backbone\.0\.'])],
        load_from=str(path))
    with pytest.raises(ValueError, match='4 of 9 frozen tensors are missing'):
        runner.train()
    MMLogger._instance_dict.clear()
    model = ToyClassifier(with_calibration=True)
    runner = make_runner(
        tmp_path,
        model,
        length=2,
        load_from=str(path),
        custom_hooks=[DisAlignFreezeHook(allow_missing=['backbone'])])
    runner.train()
    assert len(model.train_modes) == 2


def test_check_stage1_false_skips_guard(tmp_path):
    model = ToyClassifier(with_calibration=True)
    runner = make_runner(
        tmp_path,
        model,
        length=2,
        custom_hooks=[DisAlignFreezeHook(check_stage1=False)])
    runner.train()
    assert model.train_modes == [(False, True)] * 2


class FcProbe(Hook):
    """Copies ``head.fc`` after loading and freezing, before iteration 1."""
    priority = 'LOWEST'

    def before_train(self, runner):
        self.fc = {
            k: v.detach().clone()
            for k, v in runner.model.head.fc.state_dict().items()
        }


def test_crt_reinit_drops_stage1_classifier(tmp_path, stage1):
    """cRT: head.fc starts from its initialisation, not from stage 1; a
    resumed stage-2 checkpoint loads whole."""
    path, s1 = stage1
    torch.manual_seed(123)
    model = ToyClassifier()
    init = {k: v.clone() for k, v in model.head.fc.state_dict().items()}
    hook = DisAlignFreezeHook(trainable=['head.fc'], reinit=['head.fc'])
    probe = FcProbe()
    runner = make_runner(
        tmp_path / 'a',
        model,
        length=4,
        custom_hooks=[hook, probe],
        load_from=path)
    runner.train()
    assert hook.reinitialized == ['head.fc.weight', 'head.fc.bias']
    for key in ('weight', 'bias'):
        assert torch.equal(probe.fc[key], init[key]), key
        assert not torch.equal(probe.fc[key], s1[f'head.fc.{key}']), key
    state = final_state(runner)
    backbone = [k for k in FROZEN if k.startswith('backbone')]
    assert_frozen_identical(state, s1, backbone + BN_BUFFERS)
    saved = torch.load(tmp_path / 'a' / 'iter_4.pth', weights_only=False)
    assert saved['meta']['mmdisalign_stage2'] == dict(
        path='runner', reinit=['head.fc'])

    # The stage-2 checkpoint (marked) keeps its classifier when loaded.
    hook2, probe2 = DisAlignFreezeHook(
        trainable=['head.fc'], reinit=['head.fc']), FcProbe()
    runner = make_runner(
        tmp_path / 'b',
        ToyClassifier(),
        length=1,
        custom_hooks=[hook2, probe2],
        load_from=str(tmp_path / 'a' / 'iter_4.pth'))
    runner.train()
    assert hook2.reinitialized == []
    for key in ('weight', 'bias'):
        assert torch.equal(probe2.fc[key],
                           saved['state_dict'][f'head.fc.{key}']), key


def test_reinit_errors(tmp_path, stage1):
    path, _ = stage1
    runner = make_runner(
        tmp_path / 'a',
        ToyClassifier(),
        length=1,
        load_from=path,
        custom_hooks=[
            DisAlignFreezeHook(trainable=['head.fc'], reinit=['head.cls'])
        ])
    with pytest.raises(ValueError, match=r"\['head.cls'\] match no key"):
        runner.train()
    # Re-initialised but frozen: it would stay random.
    runner = make_runner(
        tmp_path / 'b',
        ToyClassifier(with_calibration=True),
        length=1,
        load_from=path,
        custom_hooks=[DisAlignFreezeHook(reinit=['head.fc'])])
    with pytest.raises(ValueError, match='re-initialised .* but frozen'):
        runner.train()


class _Recorder(Hook):
    """Records the model state when training starts (after loading, init
    and freezing) and every training batch, for a hand-written loop."""
    priority = 'LOWEST'

    def __init__(self):
        self.start = None
        self.batches = []

    def before_train(self, runner):
        self.start = copy.deepcopy(runner.model.state_dict())

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.batches.append(copy.deepcopy(data_batch))


def test_freeze_norm_false_is_the_reference_loop(tmp_path, stage1):
    """freeze_norm=False is the reference stage 2 (classification and
    segmentation code): the whole model in train mode, the stage-1
    parameters frozen (no gradient), SGD with weight decay on the
    calibration only; BN running statistics are re-estimated from the
    stage-2 batches. Bit for bit the numbers of a plain PyTorch loop doing
    that."""
    path, s1 = stage1
    model = ToyClassifier(with_calibration=True)
    recorder = _Recorder()
    runner = make_runner(
        tmp_path,
        model,
        length=4,
        load_from=path,
        custom_hooks=[DisAlignFreezeHook(freeze_norm=False), recorder])
    runner.train()
    ours = final_state(runner)

    # The reference loop: requires_grad=False on every stage-1 parameter,
    # model.train(), torch.optim.SGD over the trainable parameters.
    ref = ToyClassifier(with_calibration=True)
    ref.load_state_dict(recorder.start)
    for name, p in ref.named_parameters():
        p.requires_grad_(name.startswith(CALIB))
    optim = torch.optim.SGD([p for p in ref.parameters() if p.requires_grad],
                            lr=0.1,
                            momentum=0.9,
                            weight_decay=5e-4)
    ref.train()
    assert len(recorder.batches) == 4
    for batch in recorder.batches:
        loss = ref(batch['inputs'], batch['data_samples'], mode='loss')
        loss['loss'].backward()
        optim.step()
        optim.zero_grad()
    expected = ref.state_dict()

    assert set(ours) == set(expected)
    for key in ours:
        torch.testing.assert_close(
            ours[key], expected[key], rtol=0, atol=0, msg=key)
    # What the reference does to the frozen part: BN weights and biases
    # are the stage-1 ones bit for bit, its running statistics moved.
    assert_frozen_identical(ours, s1, FROZEN)
    assert ours['backbone.1.num_batches_tracked'].item() == 6 + 4
    for key in ('backbone.1.running_mean', 'backbone.1.running_var'):
        assert (ours[key] - s1[key]).abs().max() > 1e-3, key
    # (backbone BN, confidence BN) in train mode at every forward.
    assert model.train_modes == [(True, True)] * 4
