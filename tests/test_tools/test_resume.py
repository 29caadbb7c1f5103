"""An interrupted stage 2 restarted with --resume ends where an
uninterrupted one ends, and never touches the stage-1 weights.

The interrupted run is started the way a preemptible job is: with
``--resume`` in an empty work dir (so it starts from ``load_from``, the
stage-1 checkpoint). The probe hook raises after epoch 1, once
``epoch_1.pth`` is written; the same command then resumes from it. The
uninterrupted reference is the one-process run of the session (same
config, same seed, deterministic pipeline).
"""
import pytest
import torch


def test_resume_matches_uninterrupted(h, tmp_path, monkeypatch, cls_stage1,
                                      cls_stage2_config, cls_single):
    work_dir = tmp_path / 'work'
    command = (cls_stage2_config, '--work-dir', work_dir, '--resume')

    monkeypatch.setenv('DISALIGN_PROBE_CRASH_AFTER_EPOCH', '1')
    with pytest.raises(RuntimeError, match='simulated crash after epoch 1'):
        h.run_tool('train', *command)
    assert (work_dir / 'epoch_1.pth').is_file()
    assert not (work_dir / f'epoch_{h.EPOCHS}.pth').exists()
    interrupted = h.load(work_dir / 'epoch_1.pth')
    # The first start came from load_from: the frozen part is stage 1 ...
    stage1 = h.load(cls_stage1)['state_dict']
    for key, value in h.frozen(interrupted['state_dict']).items():
        assert torch.equal(value, stage1[key]), key
    # ... and epoch 1 is exactly epoch 1 of the uninterrupted run.
    reference_1 = h.load(cls_single / 'epoch_1.pth')['state_dict']
    assert h.max_abs_diff(interrupted['state_dict'], reference_1) == 0

    monkeypatch.delenv('DISALIGN_PROBE_CRASH_AFTER_EPOCH')
    runner = h.run_tool('train', *command)
    probe = h.load(work_dir / 'probe_rank0.pth')
    # It resumed after epoch 1 (3 of 6 iterations) from epoch_1.pth: the
    # calibration it started from is the one of the checkpoint, not a
    # fresh initialisation.
    assert (probe['start']['epoch'], probe['start']['iter']) == (1, 3)
    start = probe['start']['calibration']
    assert h.max_abs_diff(start, h.calibration(interrupted['state_dict'])) == 0
    single = h.load(cls_single / 'probe_rank0.pth')
    assert h.max_abs_diff(start, single['start']['calibration']) > 1e-3
    # Frozen part still stage 1, only the calibration trainable, and the
    # model of the runner still frozen at the end.
    h.assert_stage2_result(probe, cls_stage1, min_change=0)
    for name, param in runner.model.named_parameters():
        assert param.requires_grad == ('.calibration.' in name), name
    # Same end as the uninterrupted run: bit for bit on the CPU.
    assert h.max_abs_diff(
        h.calibration(probe['state_dict']),
        h.calibration(single['state_dict'])) == 0
    final = h.load(work_dir / f'epoch_{h.EPOCHS}.pth')
    assert final['meta']['epoch'] == h.EPOCHS
    assert final['meta']['iter'] == h.ITERS
