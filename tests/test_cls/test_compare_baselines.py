"""tools/compare_baselines.py on the quick Fashion-MNIST-LT (2 seeds)."""
import json
import os
import os.path as osp
import statistics

import pytest
import torch
from mmengine.logging import MMLogger

DATA = '/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz'


def _run(load_tool, argv):
    cwd = os.getcwd()
    try:
        return load_tool('compare_baselines').main(argv)
    finally:
        os.chdir(cwd)
        MMLogger._instance_dict.clear()


def _state_dict(path):
    return torch.load(
        path, map_location='cpu', weights_only=False)['state_dict']


@pytest.mark.skipif(not osp.isfile(DATA), reason='dataset-fashion-mnist')
def test_compare_baselines_quick(tmp_path, load_tool):
    work = tmp_path / 'cmp'
    argv = [
        '--quick', '--seeds', '0,1', '--methods',
        'stage1,tau-norm,crt,disalign', '--work-dir',
        str(work)
    ]
    results = _run(load_tool, argv)
    assert results['methods'] == ['stage1', 'tau-norm', 'crt', 'disalign']
    for method, keys in results['summary'].items():
        for key, stats in keys.items():
            values = [
                results['per_seed'][s][method]['metrics'][f'lt/{key}']
                for s in ('0', '1')
            ]
            assert stats['values'] == values
            assert stats['mean'] == pytest.approx(statistics.fmean(values))
            assert stats['std'] == pytest.approx(statistics.stdev(values))
    for seed in ('0', '1'):
        runs = results['per_seed'][seed]
        # tau-norm is evaluated on the stage-1 checkpoint of its seed
        assert runs['tau-norm']['checkpoint'] == runs['stage1']['checkpoint']
        s1 = _state_dict(runs['stage1']['checkpoint'])
        crt = _state_dict(runs['crt']['checkpoint'])
        for key, value in s1.items():
            if key.startswith('head.fc.'):
                # re-initialised (std 0.01) and re-trained
                assert not torch.allclose(crt[key], value), key
            else:
                assert torch.equal(crt[key], value), key
        # Every metric agrees with the per-class file of its test.
        for method in ('tau-norm', 'crt', 'disalign'):
            per_class = (
                work / f'seed{seed}' / method / 'eval' /
                'per_class_accuracy.json')
            rows = json.loads(per_class.read_text())['classes']
            top1 = 100 * sum(r['num_correct']
                             for r in rows) / sum(r['num_test'] for r in rows)
            assert runs[method]['metrics']['lt/top1'] == pytest.approx(top1)
    # The two seeds trained different stage-1 models.
    assert not torch.equal(
        _state_dict(results['per_seed']['0']['stage1']
                    ['checkpoint'])['head.fc.weight'],
        _state_dict(results['per_seed']['1']['stage1']['checkpoint'])
        ['head.fc.weight'])
    table = (work / 'results.md').read_text()
    assert '| cRT |' in table and 'DisAlign - stage 1' in table

    # Started again: every run is reused, same numbers.
    again = _run(load_tool, argv)
    assert again['summary'] == results['summary']


def _best(rows):
    """The value of the best overall top-1 (ties: the first)."""
    top = max(r['metrics']['top1'] for r in rows)
    return next(r['value'] for r in rows if r['metrics']['top1'] == top)


@pytest.mark.skipif(not osp.isfile(DATA), reason='dataset-fashion-mnist')
def test_compare_baselines_tune_quick(tmp_path, load_tool):
    """--tune: values chosen on the validation list of each seed's stage 1,
    the tuned runs use them, both tables are reported."""
    from mmengine.config import Config
    work = tmp_path / 'tuned'
    argv = [
        '--quick', '--tune', '--seeds', '0,1', '--methods',
        'stage1,tau-norm,crt,disalign,disalign-cached', '--work-dir',
        str(work), '--rho-values', '0,1.2,2', '--lr-values', '0.1,0.5',
        '--tau-values', '0,1,2'
    ]
    results = _run(load_tool, argv)
    tuned = results['tuned']
    assert tuned['sweeps'] == {
        'tau-norm': [0.0, 1.0, 2.0],
        'crt-lr': [0.1, 0.5],
        'rho': [0.0, 1.2, 2.0],
        'lr': [0.1, 0.5]
    }
    assert tuned['val_samples'] == 60  # 6 per class, held out of training
    # the tuned data set's own training list: 40 - 6 images in class 0
    assert (work / 'data' / 'fashion_mnist_lt_val.txt').is_file()
    table = (work / 'results.md').read_text()
    for seed in ('0', '1'):
        record = json.loads(
            (work / f'seed{seed}' / 'tune' / 'tuning.json').read_text())
        assert tuned['chosen'][seed] == record['chosen']
        # every choice is the best validation top-1 of its sweep
        for sweep, values in tuned['sweeps'].items():
            rows = record['sweeps'][sweep]['rows']
            assert [r['value'] for r in rows] == values
            assert record['chosen'][sweep] == _best(rows)
        # the tuning ran on this seed's stage 1
        stage1 = results['per_seed'][seed]['stage1']['checkpoint']
        assert record['checkpoint'] == stage1
        runs = tuned['per_seed'][seed]
        assert runs['tau-norm']['checkpoint'] == stage1
        chosen = record['chosen']
        # the tuned runs used the chosen values (the config they dumped)
        expect = {
            'tau-norm': {
                'model.head.calibration.tau': chosen['tau-norm']
            },
            'crt': {
                'optim_wrapper.optimizer.lr': chosen['crt-lr']
            },
            'disalign': {
                'model.head.loss.rho': chosen['rho'],
                'optim_wrapper.optimizer.lr': chosen['lr']
            }
        }
        # the cached path trains with DisAlign's values
        expect['disalign-cached'] = expect['disalign']
        for method, values in expect.items():
            assert runs[method]['settings']['values'] == values
            run_dir = work / f'seed{seed}' / 'tuned' / method
            dumped = Config.fromfile(
                str(next(p for p in run_dir.glob('*.py'))))
            for key, value in values.items():
                node = dumped
                for part in key.split('.'):
                    node = node[part]
                assert node == value, (method, key)
        # cRT re-trained only the classifier of this seed's stage 1
        s1 = _state_dict(stage1)
        crt = _state_dict(runs['crt']['checkpoint'])
        for key, value in s1.items():
            if not key.startswith('head.fc.'):
                assert torch.equal(crt[key], value), key
        line = next(x for x in table.splitlines()
                    if x.startswith(f'- seed {seed}: rho'))
        printed = line.split(': ', 1)[1].split(' (tuning ')[0].split(', ')
        assert printed == [
            f'{sweep} {chosen[sweep]:g}' +
            ('*' if record['sweeps'][sweep]['edge'] else '')
            for sweep in ('rho', 'lr', 'crt-lr', 'tau-norm')
        ]
    for method, keys in tuned['summary'].items():
        per_seed = (
            results['per_seed'] if method == 'stage1' else tuned['per_seed'])
        name = method.split(':')[0]
        values = [per_seed[s][name]['metrics']['lt/top1'] for s in ('0', '1')]
        assert keys['top1']['mean'] == pytest.approx(statistics.fmean(values))
    assert set(tuned['summary']) == {
        'stage1', 'tau-norm:tuned', 'crt:tuned', 'disalign:tuned',
        'disalign-cached:tuned'
    }
    assert '| DisAlign (rho, lr tuned) |' in table and '| cRT |' in table
    assert 'DisAlign (rho, lr tuned) - DisAlign (paired by seed)' in table

    # Again: everything reused. Other sweeps in that work dir: refused.
    again = _run(load_tool, argv)
    assert again['tuned']['summary'] == tuned['summary']
    other = argv[:-2] + ['--tau-values', '0,1']
    with pytest.raises(ValueError, match='use another --work-dir'):
        _run(load_tool, other)


@pytest.mark.parametrize('argv, match', [
    (['--task', 'seg', '--tune'], '--tune applies to --task cls'),
    (['--rho-values', '1'], '--rho-values only apply with --tune'),
    (['--tune', '--rho-values=-1'], 'rho must be >= 0'),
    (['--tune', '--lr-values', '0'], 'must be > 0'),
    (['--tune', '--methods', 'stage1'], 'none of the methods'),
])
def test_compare_baselines_tune_arguments(load_tool, argv, match, capsys):
    with pytest.raises(SystemExit):
        load_tool('compare_baselines').parse_args(argv)
    assert match in capsys.readouterr().err


@pytest.mark.skipif(not osp.isfile(DATA), reason='dataset-fashion-mnist')
def test_collapsed_calibration_is_reported(tmp_path, load_tool, monkeypatch):
    """A stage 2 whose calibration collapsed is a result of the comparison:
    the run finishes (the freeze hook's opt-out is set), its record and the
    table say so. (The hook's detection itself:
    tests/test_engine/test_sigma_collapse.py.)"""
    from mmengine.config import Config
    tool = load_tool('compare_baselines')
    found = {}

    def collapsed(runner):
        hooks = [h for h in runner.hooks if hasattr(h, 'collapsed')]
        found['allowed'] = [h.allow_collapsed_calibration for h in hooks]
        return {'head.calibration': 2.5e-4}

    monkeypatch.setattr(tool, 'collapsed_calibrations', collapsed)
    work = tmp_path / 'cmp'
    cwd = os.getcwd()
    try:
        results = tool.main([
            '--quick', '--seeds', '0', '--methods', 'stage1,disalign',
            '--work-dir',
            str(work)
        ])
    finally:
        os.chdir(cwd)
        MMLogger._instance_dict.clear()
    assert found['allowed'] == [True]
    record = results['per_seed']['0']['disalign']
    assert record['collapsed'] == {'head.calibration': 2.5e-4}
    assert 'collapsed' not in results['per_seed']['0']['stage1']
    dumped = Config.fromfile(
        str(next((work / 'seed0' / 'disalign').glob('*.py'))))
    hook = next(h for h in dumped.custom_hooks
                if h['type'] == 'DisAlignFreezeHook')
    assert hook['allow_collapsed_calibration'] is True
    table = (work / 'results.md').read_text()
    assert '- DisAlign: seed 0 ' in table and ' (collapsed)' in table
    assert ('(collapsed: the calibration switched itself off, mean sigma ~ '
            '0, the run predicts like stage 1: seed 0 DisAlign '
            'head.calibration 0.00025)') in table
