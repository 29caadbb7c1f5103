"""End to end: the main job's stage 1 -> DisAlign -> evaluation (quick)."""
import json
import os
import os.path as osp

import pytest
import torch
from mmengine.logging import MMLogger

DATA = '/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz'


def _state_dict(path):
    return torch.load(
        path, map_location='cpu', weights_only=False)['state_dict']


@pytest.mark.skipif(not osp.isfile(DATA), reason='dataset-fashion-mnist')
def test_quick_main_job(tmp_path, load_tool):
    cwd = os.getcwd()
    try:
        results = load_tool('run_main_job').main(
            ['--quick', '--work-dir',
             str(tmp_path / 'job'), '--seed', '1'])
    finally:
        os.chdir(cwd)
        MMLogger._instance_dict.clear()

    # Stage 2 trained the calibration and nothing else.
    s1 = _state_dict(results['stage1_checkpoint'])
    s2 = _state_dict(results['disalign_checkpoint'])
    calib = {k for k in s2 if k.startswith('head.calibration.')}
    assert calib >= {'head.calibration.alpha', 'head.calibration.beta'}
    extra = {k for k in set(s2) - set(s1) if k.startswith('head.loss')}
    assert set(s2) - calib - extra == set(s1)
    for key, value in s1.items():
        assert torch.equal(s2[key], value), key  # bit-identical, BN too
    # Reference init: alpha = 1, beta = 0, confidence weight 0.1.
    assert not torch.allclose(s2['head.calibration.alpha'], torch.ones(10))
    assert not torch.allclose(s2['head.calibration.beta'], torch.zeros(10))
    assert not torch.allclose(s2['head.calibration.confidence.weight'],
                              torch.full((1, 64), 0.1))

    # The metrics agree with the per-class files.
    job = tmp_path / 'job'
    for stage, metrics in (('stage1', results['stage1']),
                           ('disalign', results['disalign'])):
        with open(job / stage / 'eval' / 'per_class_accuracy.json') as f:
            rows = json.load(f)['classes']
        assert len(rows) == 10 and all(r['num_test'] == 10 for r in rows)
        top1 = 100 * sum(r['num_correct'] for r in rows) / sum(r['num_test']
                                                               for r in rows)
        assert metrics['lt/top1'] == pytest.approx(top1)
        for group in ('many', 'medium', 'few'):
            accs = [r['accuracy'] for r in rows if r['group'] == group]
            assert accs, group
            assert metrics[f'lt/{group}'] == pytest.approx(
                sum(accs) / len(accs))
        for key in ('top1', 'many', 'medium', 'few'):
            assert 0 <= metrics[f'lt/{key}'] <= 100
    assert (job / 'per_class_accuracy.png').stat().st_size > 1000
    assert (job / 'grw_weights.png').stat().st_size > 1000
    assert json.loads((job / 'results.json').read_text())['seed'] == 1


@pytest.mark.skipif(not osp.isfile(DATA), reason='dataset-fashion-mnist')
def test_quick_main_job_cached_stage2(tmp_path, load_tool):
    """--stage2 cached: stage 1 as the Runner path, stage 2 from cached
    features; the result says which path ran and the checkpoint differs
    from stage 1 only in the calibration."""
    cwd = os.getcwd()
    try:
        results = load_tool('run_main_job').main([
            '--quick', '--work-dir',
            str(tmp_path / 'job'), '--seed', '1', '--stage2', 'cached'
        ])
    finally:
        os.chdir(cwd)
        MMLogger._instance_dict.clear()
    assert results['stage2_path'] == 'cached'
    s1 = _state_dict(results['stage1_checkpoint'])
    s2 = _state_dict(results['disalign_checkpoint'])
    for key, value in s1.items():
        assert torch.equal(s2[key], value), key
    assert not torch.allclose(s2['head.calibration.beta'], torch.zeros(10))
    meta = torch.load(
        results['disalign_checkpoint'], map_location='cpu',
        weights_only=False)['meta']['mmdisalign_stage2']
    assert meta['path'] == 'cached_features'
    assert meta['cache_passes'] == 1 and meta['cache_augment'] is True
    with open(tmp_path / 'job' / 'disalign' / 'eval' /
              'per_class_accuracy.json') as f:
        rows = json.load(f)['classes']
    top1 = 100 * sum(r['num_correct'] for r in rows) / sum(r['num_test']
                                                           for r in rows)
    assert results['disalign']['lt/top1'] == pytest.approx(top1)
