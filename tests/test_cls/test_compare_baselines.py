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
