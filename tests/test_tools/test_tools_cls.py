"""tools/train.py and tools/test.py on classification, in this process:
outputs of test.py, and the errors of bad stage-2 launches."""
import pickle

import pytest
import torch

BAD_STAGE2 = '''\
_base_ = {stage1!r}
custom_hooks = [dict(type='DisAlignFreezeHook')]
load_from = {ckpt!r}
'''


def test_test_tool_out_and_show_dir(h, tmp_path, cls_stage2_config,
                                    cls_single):
    ckpt = cls_single / f'epoch_{h.EPOCHS}.pth'
    out = tmp_path / 'preds.pkl'
    metrics = h.run_tool('test', cls_stage2_config, ckpt, '--work-dir',
                         tmp_path / 'work', '--out', out, '--show-dir',
                         tmp_path / 'vis')
    with open(out, 'rb') as f:
        results = pickle.load(f)
    assert len(results) == 20  # 2 test images per class
    correct = [
        int(r['pred_label'].item() == r['gt_label'].item()) for r in results
    ]
    top1 = [v for k, v in metrics.items() if k.endswith('top1')]
    assert len(top1) == 1
    assert top1[0] == pytest.approx(100 * sum(correct) / len(correct))
    # the scores are those of the trained (calibrated) model
    scores = torch.stack([torch.as_tensor(r['pred_score']) for r in results])
    assert torch.allclose(scores.sum(1), torch.ones(20), atol=1e-5)
    painted = list((tmp_path / 'vis').glob('*.png'))
    assert len(painted) == 20


def test_freeze_hook_on_a_model_without_calibration(h, tmp_path, cls_stage1,
                                                    session_dir):
    """The stage-1 config with the freeze hook: nothing to train.

    It inherits the test's stage-1 config (written by the ``cls_stage1``
    fixture, pointing at the test data), not the shipped one, whose data
    root does not exist on a fresh clone.
    """
    stage1_cfg = session_dir / 'cls_stage1.py'
    assert stage1_cfg.is_file()
    cfg = h.write(
        tmp_path / 'not_stage2.py',
        BAD_STAGE2.format(stage1=str(stage1_cfg), ckpt=str(cls_stage1)))
    with pytest.raises(
            ValueError,
            match='DisAlignFreezeHook: nothing to train in '
            'ImageClassifier'):
        h.run_tool('train', cfg, '--work-dir', tmp_path / 'work',
                   '--cfg-options', 'train_dataloader.num_workers=0',
                   'train_dataloader.persistent_workers=False',
                   'val_dataloader=None', 'val_cfg=None', 'val_evaluator=None')


def test_stage2_without_load_from(h, tmp_path, cls_stage2_config):
    with pytest.raises(
            ValueError, match='no checkpoint was loaded: `load_from` is None'):
        h.run_tool('train', cls_stage2_config, '--work-dir', tmp_path / 'work',
                   '--cfg-options', 'load_from=None')
    # --resume with an empty work dir and no load_from: the same error
    with pytest.raises(ValueError, match='resume=True found no checkpoint'):
        h.run_tool('train', cls_stage2_config, '--work-dir',
                   tmp_path / 'work2', '--resume', '--cfg-options',
                   'load_from=None')


def test_fewer_samples_than_processes(h, tmp_path, monkeypatch,
                                      cls_stage2_config, cls_single):
    """The Runner sees 2 processes (patched), the data set has 1 sample:
    train.py and test.py stop in before_run, before any step."""
    import mmengine.runner.runner as runner_module
    monkeypatch.setattr(runner_module, 'get_dist_info', lambda: (0, 2))
    with pytest.raises(
            ValueError,
            match='train_dataloader.dataset has 1 sample.* 2 '
            'processes'):
        h.run_tool('train', cls_stage2_config, '--work-dir', tmp_path / 'work',
                   '--cfg-options', 'train_dataloader.dataset.indices=1')
    assert not list((tmp_path / 'work').rglob('*.pth'))
    with pytest.raises(
            ValueError, match='test_dataloader.dataset has 1 sample'):
        h.run_tool('test', cls_stage2_config,
                   cls_single / f'epoch_{h.EPOCHS}.pth', '--work-dir',
                   tmp_path / 'work', '--cfg-options',
                   'test_dataloader.dataset.indices=1')
