"""Stage-2 guards with a real mmengine Runner on the CPU: a loaded model
with a calibration trained without DisAlignFreezeHook, and divergence
(non-finite loss or calibration). The toy model, data and runner are those
of test_freeze_hook.py."""
import math
from types import SimpleNamespace

import pytest
import test_freeze_hook as toy  # the toy runs, same folder
import torch
from mmengine.logging import MessageHub

from mmdisalign.engine.hooks import DisAlignFreezeHook
from mmdisalign.engine.hooks.freeze_hook import FreezePlan

CALIB, FROZEN = toy.CALIB, toy.FROZEN
ToyClassifier, make_runner = toy.ToyClassifier, toy.make_runner
# The fixtures of the toy runs.
stage1, _clear_loggers = toy.stage1, toy._clear_loggers


def test_loaded_calibration_without_freeze_hook_stops(tmp_path, stage1):
    path, _ = stage1
    runner = make_runner(
        tmp_path, ToyClassifier(with_calibration=True), load_from=path)
    with pytest.raises(ValueError) as info:
        runner.train()
    message = str(info.value)
    assert message.startswith('DisAlignCalibration: the model was loaded '
                              'from a checkpoint')
    assert '(its logits and feats require grad)' in message
    assert "custom_hooks = [dict(type='DisAlignFreezeHook')]" in message
    assert 'joint_training=True' in message
    # It stopped at the first step: no checkpoint.
    assert not list(tmp_path.glob('*.pth'))


def test_joint_training_trains_the_whole_loaded_network(tmp_path, stage1):
    path, state1 = stage1
    model = ToyClassifier(with_calibration=True)
    model.head.calibration.joint_training = True
    runner = make_runner(tmp_path, model, load_from=path)
    runner.train()
    state = runner.model.state_dict()
    for key in FROZEN:  # all of it trained
        assert not torch.equal(state[key], state1[key]), key


def test_training_from_scratch_is_not_refused(tmp_path):
    # No checkpoint loaded: nothing of a stage 1 can be lost.
    runner = make_runner(tmp_path, ToyClassifier(with_calibration=True))
    runner.train()
    assert runner.iter == 6


def test_freeze_hook_satisfies_the_check(tmp_path, stage1):
    path, _ = stage1
    hook = DisAlignFreezeHook(trainable=['head.fc'])  # logits need grad
    runner = make_runner(
        tmp_path,
        ToyClassifier(with_calibration=True),
        load_from=path,
        custom_hooks=[hook])
    runner.train()
    assert runner.model.head.calibration.freeze_planned


@pytest.mark.parametrize('by_epoch', [False, True])
def test_divergence_stops_at_the_first_non_finite_loss(tmp_path, stage1,
                                                       by_epoch):
    path, _ = stage1
    runner = make_runner(
        tmp_path,
        ToyClassifier(with_calibration=True),
        by_epoch=by_epoch,
        length=6,
        load_from=path,
        custom_hooks=[DisAlignFreezeHook()])
    # Built by Runner.train() from this config.
    runner.optim_wrapper = dict(optimizer=dict(type='SGD', lr=1e30))
    losses = []
    with pytest.raises(FloatingPointError) as info:
        try:
            runner.train()
        finally:
            losses = list(runner.message_hub.get_scalar('train/loss').data[0])
    message = str(info.value)
    # The first non-finite loss, counted from 1 as mmengine logs.
    first = next(i for i, v in enumerate(losses) if not math.isfinite(v))
    assert all(math.isfinite(v) for v in losses[:first])
    assert runner.iter == first  # stopped there
    assert f'the loss is {losses[first]} at iteration {first + 1}' in message
    if by_epoch:
        assert '(epoch 1)' in message
    else:  # an iteration-based loop has no epochs to name
        assert '(epoch' not in message
    assert 'non-finite trained tensors (after this iteration' in message
    assert f'{CALIB}.' in message
    assert 'Lower the learning rate' in message
    assert not list(tmp_path.glob('*.pth'))


def test_non_finite_checkpoint_is_not_saved():
    hook = DisAlignFreezeHook()
    hook.plan = FreezePlan(trainable=[f'{CALIB}.alpha', f'{CALIB}.beta'])
    state = {
        f'{CALIB}.alpha': torch.tensor([1.0, float('nan'),
                                        float('inf')]),
        f'{CALIB}.beta': torch.zeros(3),
        'head.fc.bias': torch.tensor([float('nan')]),  # frozen: not checked
    }
    checkpoint = dict(meta=dict(epoch=0, iter=6), state_dict=state)
    with pytest.raises(
            FloatingPointError,
            match=r'not saving the checkpoint of epoch 0, iter 6: '
            r'non-finite trained tensors head\.calibration\.alpha \(2 of 3 '
            r'values non-finite\)\.'):
        hook.before_save_checkpoint(SimpleNamespace(), checkpoint)
    state[f'{CALIB}.alpha'] = torch.ones(3)
    hook.before_save_checkpoint(SimpleNamespace(), checkpoint)
    assert 'mmdisalign_stage2' in checkpoint['meta']


def test_finite_trained_tensors_blame_the_logits():
    hook = DisAlignFreezeHook()
    model = ToyClassifier(with_calibration=True)
    hook.plan = FreezePlan(trainable=[f'{CALIB}.alpha'])
    hub = MessageHub(f'guards_{id(hook)}')
    hub.update_scalar('train/loss', float('inf'))
    hub.update_scalar('train/loss_cls', float('inf'))
    hub.update_scalar('train/loss_aux', 0.5)
    runner = SimpleNamespace(
        model=model, message_hub=hub, iter=2, train_loop=None)
    with pytest.raises(
            FloatingPointError,
            match=r'the loss is inf at iteration 3 \(non-finite loss terms: '
            r'loss=inf, loss_cls=inf\); the trained tensors are finite, so '
            r'the non-finite value comes from the logits of the frozen '
            r'network or the loss'):
        hook.after_train_iter(runner, 2)
    hub.update_scalar('train/loss', 1.0)
    hook.after_train_iter(runner, 3)  # finite: nothing
