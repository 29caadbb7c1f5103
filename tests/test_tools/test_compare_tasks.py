"""tools/compare_baselines.py --task seg|det on tiny Fashion-MNIST scenes.

One seed, a few iterations: every table row and per-class value is there
and in range, the post-hoc methods at tau 0 are the stage-1 model, a
second start reuses every run, and bad input stops with a message.
"""
import json
import math
import os
import os.path as osp
import re

import pytest
from mmengine.logging import MMLogger

DATA = '/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz'
needs_data = pytest.mark.skipif(
    not osp.isfile(DATA), reason='dataset-fashion-mnist')


def _run(load_tool, argv):
    cwd = os.getcwd()
    try:
        return load_tool('compare_baselines').main(argv)
    finally:
        os.chdir(cwd)
        MMLogger._instance_dict.clear()


def _check(results, task, methods, columns, work):
    assert results['task'] == task and results['methods'] == methods
    runs = results['per_seed']['0']
    for method in methods:
        metrics = runs[method]['metrics']
        for key in columns:
            value = results['summary'][method][key]['mean']
            assert value == pytest.approx(metrics[key], nan_ok=True)
            assert math.isnan(value) or 0 <= value <= 100, (method, key)
        assert len(metrics['per_class']) == 10
        assert all(
            math.isnan(v) or 0 <= v <= 100 for v in metrics['per_class'])
        assert results['per_class'][method] == pytest.approx(
            metrics['per_class'], nan_ok=True)
    # tau 0: the post-hoc calibrations are the identity
    for method in methods:
        if method in ('tau-norm', 'logit-adjust'):
            assert runs[method]['checkpoint'] == runs['stage1']['checkpoint']
            # the same numbers (NaN where a class or group is absent)
            assert json.dumps(runs[method]['metrics']) == json.dumps(
                runs['stage1']['metrics'])
    table = (work / 'results.md').read_text()
    for name in ('| stage 1 |', '| LWS |'):
        assert name in table
    assert (work / 'per_class.png').stat().st_size > 0
    # frequency order of the plot: the training counts of the data set
    assert len(results['class_counts']) == 10


@needs_data
def test_compare_seg_quick_and_resume(tmp_path, load_tool):
    work = tmp_path / 'seg'
    methods = ['stage1', 'tau-norm', 'logit-adjust', 'lws']
    argv = [
        '--task', 'seg', '--quick', '--seeds', '0', '--tau', '0', '--methods',
        ','.join(methods), '--work-dir',
        str(work)
    ]
    results = _run(load_tool, argv)
    _check(results, 'seg', methods,
           ('mIoU', 'head_mIoU', 'body_mIoU', 'tail_mIoU'), work)
    assert results['settings'] == dict(
        stage1_iters=20, stage2_iters=5, tau=0.0)
    lws = json.loads((work / 'seed0' / 'lws' / 'result.json').read_text())
    assert lws['settings'] == dict(quick=True, stage1_iters=20, stage2_iters=5)
    assert lws['checkpoint'].endswith('iter_5.pth')

    # Started again: every run is reused (no new checkpoint), same numbers.
    ckpts = sorted(p.name for p in (work / 'seed0').rglob('*.pth'))
    again = _run(load_tool, argv)
    assert json.dumps(again['summary']) == json.dumps(results['summary'])
    assert sorted(p.name for p in (work / 'seed0').rglob('*.pth')) == ckpts

    # A finished run of other settings is not reused silently.
    with pytest.raises(
            ValueError,
            match=r'result of another run \(tau: 0\.0 there, 1\.0 '
            r'now\): use another --work-dir'):
        _run(load_tool, argv[:6] + ['1'] + argv[7:])
    # A method still to run needs the stage-1 checkpoint.
    os.remove(results['per_seed']['0']['stage1']['checkpoint'])
    with pytest.raises(
            FileNotFoundError,
            match='stage-1 checkpoint .* is '
            'missing: restore it, or delete'):
        _run(load_tool, argv[:8] + ['stage1,disalign'] + argv[9:])


@needs_data
def test_compare_det_quick(tmp_path, load_tool):
    work = tmp_path / 'det'
    methods = ['stage1', 'tau-norm', 'lws']
    results = _run(load_tool, [
        '--task', 'det', '--quick', '--seeds', '0', '--tau', '0', '--methods',
        ','.join(methods), '--stage1-iters', '10', '--stage2-iters', '2',
        '--work-dir',
        str(work)
    ])
    _check(results, 'det', methods, ('AP', 'AP_r', 'AP_c', 'AP_f'), work)
    assert results['per_seed']['0']['lws']['checkpoint'].endswith('iter_2.pth')


@pytest.mark.parametrize('argv, message', [
    (['--task', 'pose'], "invalid choice: 'pose'"),
    (['--task', 'seg', '--methods', 'stage1,crt'
      ], r"unknown method\(s\) \['crt'\] for --task seg"),
    (['--task', 'det', '--methods', 'disalign-cached'
      ], r"unknown method\(s\) \['disalign-cached'\] for --task det"),
    (['--tau', '0'], '--tau only apply to --task seg / det'),
    (['--task', 'seg', '--stage2-iters', '0'], '--stage2-iters must be >= 1'),
])
def test_bad_arguments(load_tool, capsys, argv, message):
    with pytest.raises(SystemExit):
        load_tool('compare_baselines').parse_args(argv)
    assert re.search(message, capsys.readouterr().err)
