"""Checkpoints through tools/train.py, tools/test.py and
tools/cache_features.py: payloads refused (``load_from``, ``--resume``,
test, feature caching) unless trusted, broken files named, a
stage-1 checkpoint given to ``--resume`` or to tools/test.py of a DisAlign
config refused with the fix."""
import os

import numpy as np
import pytest
import torch

from mmdisalign.compat import CheckpointReadError, UnsafeCheckpointError


class Payload:
    """Unpickling it runs ``touch MARKER``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def _evil(h, src, out, where, marker):
    ckpt = h.load(src)
    if where == 'meta':
        ckpt['meta']['note'] = Payload(marker)
    else:
        key = next(iter(ckpt['state_dict']))
        ckpt['state_dict'][key + '_extra'] = Payload(marker)
    torch.save(ckpt, str(out))
    return out


def _assert_refused(info, path):
    message = str(info.value)
    assert f"Refusing to load checkpoint '{path}'" in message
    assert f'it needs {os.system.__module__}.system,' in message
    assert '`trust_checkpoint = True` in the config' in message
    assert '--trust-checkpoint' in message


@pytest.mark.parametrize('where', ['meta', 'state_dict'])
def test_payload_refused_by_train_load_from(h, tmp_path, cls_stage1,
                                            cls_stage2_config, where):
    marker = tmp_path / 'marker'
    evil = _evil(h, cls_stage1, tmp_path / 'stage1.pth', where, marker)
    with pytest.raises(UnsafeCheckpointError) as info:
        h.run_tool('train', cls_stage2_config, '--work-dir', tmp_path / 'w',
                   '--cfg-options', f'load_from={evil}')
    _assert_refused(info, evil)
    assert not marker.exists()
    assert not (tmp_path / 'w' / 'epoch_1.pth').exists()


def test_payload_trusted_by_config_key(h, tmp_path, cls_stage1,
                                       cls_stage2_config):
    marker = tmp_path / 'marker'
    evil = _evil(h, cls_stage1, tmp_path / 'stage1.pth', 'meta', marker)
    h.run_tool('train', cls_stage2_config, '--work-dir', tmp_path / 'w',
               '--cfg-options', f'load_from={evil}', 'trust_checkpoint=True',
               'train_cfg.max_epochs=1')
    assert marker.exists()
    h.assert_stage2_result(
        h.load(tmp_path / 'w' / 'probe_rank0.pth'), cls_stage1, iters=3)


def test_payload_refused_by_resume(h, tmp_path, cls_stage2_config, cls_single):
    marker = tmp_path / 'marker'
    evil = _evil(h, cls_single / 'epoch_1.pth', tmp_path / 'epoch_1.pth',
                 'meta', marker)
    command = (cls_stage2_config, '--work-dir', tmp_path / 'w', '--resume',
               evil)
    with pytest.raises(UnsafeCheckpointError) as info:
        h.run_tool('train', *command)
    _assert_refused(info, evil)
    assert not marker.exists()
    runner = h.run_tool('train', *command, '--trust-checkpoint')
    assert marker.exists()
    assert runner.iter == h.ITERS


def test_resume_config_text_refused(h, tmp_path, cls_stage2_config,
                                    cls_single):
    """mmengine's Runner.resume runs meta['config'] as Python."""
    marker = tmp_path / 'marker'
    ckpt = h.load(cls_single / 'epoch_1.pth')
    ckpt['meta']['config'] = f"import os\nos.system('touch {marker}')\n"
    path = tmp_path / 'epoch_1.pth'
    torch.save(ckpt, str(path))
    with pytest.raises(UnsafeCheckpointError) as info:
        h.run_tool('train', cls_stage2_config, '--work-dir', tmp_path / 'w',
                   '--resume', path)
    assert str(info.value).startswith(
        f"Refusing to resume from '{path}': its meta holds 'config', a "
        "config text that mmengine's Runner.resume runs as Python")
    assert '--trust-checkpoint' in str(info.value)
    assert not marker.exists()


def test_payload_refused_by_test(h, tmp_path, cls_stage2_config, cls_single):
    marker = tmp_path / 'marker'
    evil = _evil(h, cls_single / f'epoch_{h.EPOCHS}.pth',
                 tmp_path / 'ckpt.pth', 'state_dict', marker)
    with pytest.raises(UnsafeCheckpointError) as info:
        h.run_tool('test', cls_stage2_config, evil, '--work-dir',
                   tmp_path / 'w')
    _assert_refused(info, evil)
    assert not marker.exists()
    metrics = h.run_tool('test', cls_stage2_config, evil, '--work-dir',
                         tmp_path / 'w', '--trust-checkpoint')
    assert marker.exists()
    reference = h.run_tool('test', cls_stage2_config,
                           cls_single / f'epoch_{h.EPOCHS}.pth', '--work-dir',
                           tmp_path / 'ref')
    assert metrics == reference


def test_payload_refused_by_cache_features(h, tmp_path, cls_stage1,
                                           cls_stage2_config):
    marker = tmp_path / 'marker'
    evil = _evil(h, cls_stage1, tmp_path / 'stage1.pth', 'meta', marker)
    with pytest.raises(UnsafeCheckpointError) as info:
        h.run_tool('cache_features', cls_stage2_config, '--checkpoint', evil,
                   '--out', tmp_path / 'refused', '--no-compile')
    _assert_refused(info, evil)
    assert '`--trust-checkpoint` on tools/train.py / tools/test.py / ' \
        'tools/cache_features.py' in str(info.value)
    assert not marker.exists()
    assert not (tmp_path / 'refused').exists()
    clean = h.run_tool('cache_features', cls_stage2_config, '--checkpoint',
                       cls_stage1, '--out', tmp_path / 'clean', '--no-compile')
    assert clean['num_samples'] == h.NUM_TRAIN
    # the flag, or the config key
    opt_ins = (['--trust-checkpoint'],
               ['--cfg-options', 'trust_checkpoint=True'])
    for i, opt_in in enumerate(opt_ins):
        out = tmp_path / f'trusted{i}'
        meta = h.run_tool('cache_features', cls_stage2_config, '--checkpoint',
                          evil, '--out', out, '--no-compile', *opt_in)
        assert marker.exists()
        marker.unlink()
        assert meta['feature_sha1'] == clean['feature_sha1']
        assert meta['num_samples'] == h.NUM_TRAIN
        for name in ('feats', 'logits', 'labels'):
            np.testing.assert_array_equal(
                np.load(out / f'{name}.npy'),
                np.load(tmp_path / 'clean' / f'{name}.npy'))


@pytest.mark.parametrize('name, content', [('empty.pth', b''),
                                           ('class_freq.json', b'[5, 3]')])
def test_broken_load_from(h, tmp_path, cls_stage2_config, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CheckpointReadError) as info:
        h.run_tool('train', cls_stage2_config, '--work-dir', tmp_path / 'w',
                   '--cfg-options', f'load_from={path}')
    assert f"'{path}'" in str(info.value)


def test_stage1_checkpoint_given_to_resume(h, tmp_path, cls_stage1,
                                           cls_stage2_config):
    with pytest.raises(ValueError) as info:
        h.run_tool('train', cls_stage2_config, '--work-dir', tmp_path / 'w',
                   '--resume', cls_stage1)
    message = str(info.value)
    assert message.startswith(
        f"--resume / resume=True with '{cls_stage1}': 4 of the 4 "
        'calibration parameters of the model are not in the checkpoint: '
        'head.calibration.alpha, ')
    assert "It was written by run 't" in message
    assert 'epoch 1, iter 3' in message
    assert f"give them as `load_from` (load_from = '{cls_stage1}', " \
        'resume = False' in message


def test_test_tool_refuses_stage1_checkpoint(h, tmp_path, cls_stage1,
                                             cls_stage2_config):
    with pytest.raises(ValueError) as info:
        h.run_tool('test', cls_stage2_config, cls_stage1, '--work-dir',
                   tmp_path / 'w')
    message = str(info.value)
    assert message.startswith(
        f"tools/test.py: '{cls_stage1}' does not fit this DisAlign config: "
        '4 of the 4 calibration parameters of the model are not in the '
        'checkpoint: head.calibration.alpha, ')
    assert 'pass --allow-uncalibrated' in message
    metrics = h.run_tool('test', cls_stage2_config, cls_stage1, '--work-dir',
                         tmp_path / 'w', '--allow-uncalibrated')
    top1 = [v for k, v in metrics.items() if k.endswith('top1')]
    assert len(top1) == 1 and 0 <= top1[0] <= 100
