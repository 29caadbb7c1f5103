"""DisAlignFreezeHook against a collapsed calibration (sigma ~ 0 for every
sample: the model predicts like stage 1), with a real mmengine Runner on
the CPU. The toy model, data and runner are those of
test_freeze_hook.py."""
import pytest
import test_freeze_hook as toy  # the toy runs, same folder
import torch
from mmengine.hooks import Hook

from mmdisalign.engine.hooks import DisAlignFreezeHook

ToyClassifier, make_runner, read_log = (toy.ToyClassifier, toy.make_runner,
                                        toy.read_log)
# The fixtures of the toy runs.
stage1, _clear_loggers = toy.stage1, toy._clear_loggers


class Collapse(Hook):
    """Sets the confidence bias to -30 after the stage-1 weights loaded:
    sigma = sigmoid(~-30) ~ 1e-13, where the gradient vanishes."""
    priority = 'HIGHEST'

    def before_train(self, runner):
        with torch.no_grad():
            runner.model.head.calibration.confidence.bn.bias.fill_(-30.0)


def _run(tmp_path, stage1, hook, collapse, by_epoch=False, length=6):
    runner = make_runner(
        tmp_path,
        ToyClassifier(with_calibration=True),
        by_epoch=by_epoch,
        length=length,
        load_from=stage1[0],
        custom_hooks=[hook] + ([Collapse()] if collapse else []))
    return runner


def test_collapsed_calibration_warns_and_stops(tmp_path, stage1):
    hook = DisAlignFreezeHook(sigma_check_interval=2)
    runner = _run(tmp_path, stage1, hook, collapse=True)
    with pytest.raises(RuntimeError) as info:
        runner.train()
    message = str(info.value)
    mean = hook.collapsed['head.calibration']
    assert 0 < mean < 1e-10
    assert message.startswith(
        'DisAlignFreezeHook: calibration collapsed at the end of training: '
        f'head.calibration (mean sigma {mean:.3g}, trained with lr 0.1)')
    assert 'below min_mean_sigma=0.001' in message
    assert 'the model predicts like the stage-1 model' in message
    assert 'Lower the stage-2 learning rate (optim_wrapper.optimizer.lr)' \
        in message
    assert f'checkpoints were saved (in {tmp_path})' in message
    assert 'allow_collapsed_calibration=True' in message
    # the last checkpoint exists (it holds the stage-1 predictions)
    assert (tmp_path / 'iter_6.pth').is_file()
    # one warning per check window: iterations 2, 4, 6
    log = read_log(runner)
    warnings = [
        line for line in log.splitlines()
        if 'calibration collapsed at iteration' in line
    ]
    assert len(warnings) == 3
    for it, line in zip((2, 4, 6), warnings):
        assert 'WARNING' in line
        assert (f'collapsed at iteration {it}: head.calibration (mean sigma '
                in line)
        assert 'trained with lr 0.1)' in line
    # a window is reset at each check: the final check had nothing new
    assert runner.model.head.calibration.sigma_count.item() == 0


def test_opt_out_warns_only(tmp_path, stage1):
    hook = DisAlignFreezeHook(allow_collapsed_calibration=True)
    runner = _run(
        tmp_path, stage1, hook, collapse=True, by_epoch=True, length=2)
    runner.train()  # no error
    assert hook.collapsed['head.calibration'] < 1e-10
    log = read_log(runner)
    for epoch in (1, 2):
        assert (f'WARNING - DisAlignFreezeHook: calibration collapsed at the '
                f'end of epoch {epoch}: head.calibration (mean sigma ') in log
    assert log.count('calibration collapsed') == 2


@pytest.mark.parametrize('by_epoch', [False, True])
def test_normal_run_does_not_warn(tmp_path, stage1, by_epoch):
    hook = DisAlignFreezeHook(sigma_check_interval=2)
    checks = []
    original = hook._check_sigma

    def spy(runner, when):
        calib = runner.model.head.calibration
        checks.append((when, calib.mean_sigma().item()))
        original(runner, when)

    hook._check_sigma = spy
    runner = _run(
        tmp_path,
        stage1,
        hook,
        collapse=False,
        by_epoch=by_epoch,
        length=2 if by_epoch else 6)
    runner.train()
    assert hook.collapsed == {}
    assert 'collapsed' not in read_log(runner)
    whens = [w for w, _ in checks]
    if by_epoch:
        assert whens == [
            'the end of epoch 1', 'the end of epoch 2', 'the end of training'
        ]
    else:
        assert whens == [f'iteration {i}'
                         for i in (2, 4, 6)] + ['the end of training']
    # sigma around sigmoid(BN output) ~ 0.5; nothing left for the last
    assert all(0.3 < mean < 0.7 for _, mean in checks[:-1])
    assert checks[-1][1] != checks[-1][1]  # NaN: an empty window


def test_bad_interval():
    with pytest.raises(ValueError, match='sigma_check_interval must be >= 1'):
        DisAlignFreezeHook(sigma_check_interval=0)
