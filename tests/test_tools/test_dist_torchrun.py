"""Multi-process stage 2 and test on the CPU (gloo) with torchrun:
tools/dist_train.sh and tools/dist_test.sh.

Every training run trains the calibration of the same stage-1 model on the
same 48 Fashion-MNIST-LT images, 2 epochs of total batch 16 (6 steps), and
must end

- on every rank with identical calibration parameters (DDP keeps replicas
  equal: same start, same averaged gradients);
- within ``ATOL`` (1e-6) of the one-process run with batch 16: the sampler
  gives rank r the shuffled positions r, r + 2, ..., so each step sees the
  same 16 images; the frozen BN layers use the stage-1 statistics; the GRW
  loss with ``avg_mode='pixel'`` divides by the local batch size, so the
  average of the two processes' gradients is the full-batch gradient;
- with the frozen part exactly the stage-1 weights.
"""
import pytest


def test_dist_train_two_processes(h, tmp_path, probe_dir, cls_stage1,
                                  cls_stage2_config, cls_single):
    """tools/dist_train.sh, 2 processes on one machine, batch 2 x 8."""
    work_dir = tmp_path / 'work'
    proc = h.run([
        'bash', h.TOOLS / 'dist_train.sh', cls_stage2_config, 2, '--work-dir',
        work_dir, '--cfg-options',
        f'train_dataloader.batch_size={h.TOTAL_BATCH // 2}'
    ], h.tool_env(probe_dir, PORT=h.free_port()), tmp_path)
    h.check_ok(proc)
    found = h.probes(work_dir, 2)
    h.assert_matches_single(found, cls_single, cls_stage1)
    # rank 0 wrote the checkpoints, which hold the same calibration.
    ckpt = h.load(work_dir / f'epoch_{h.EPOCHS}.pth')['state_dict']
    assert h.max_abs_diff(
        h.calibration(ckpt), h.calibration(found[0]['state_dict'])) == 0


def test_dist_test_matches_single(h, tmp_path, probe_dir, cls_stage2_config,
                                  cls_single_test):
    """tools/dist_test.sh, 2 processes, predicts what tools/test.py
    predicts in one process, for the same 20 images."""
    ckpt, single, metrics = cls_single_test
    assert len(single) == 20
    assert [k for k in metrics if k.endswith('top1')], metrics

    proc = h.run([
        'bash', h.TOOLS / 'dist_test.sh', cls_stage2_config, ckpt, 2,
        '--work-dir', tmp_path / 'dist', '--out', tmp_path / 'dist.pkl'
    ], h.tool_env(probe_dir, PORT=h.free_port()), tmp_path)
    h.check_ok(proc)
    dist = h.predictions(tmp_path / 'dist.pkl')
    assert dist.keys() == single.keys()
    assert max((dist[k] - single[k]).abs().max().item() for k in single) \
        < h.ATOL


@pytest.mark.parametrize('args, message', [
    (['dist_train.sh', 'x.py'], 'Usage: '),
    (['dist_train.sh', 'x.py', '0'], "positive integer, got '0'"),
    (['dist_test.sh', 'x.py', 'k.pth'], 'Usage: '),
    (['dist_test.sh', 'x.py', 'k.pth', 'two'], "positive integer, got 'two'"),
])
def test_dist_scripts_check_arguments(h, tmp_path, args, message):
    """Missing arguments or a GPUS that is not a number of processes stop
    the script with a message, before torchrun starts."""
    proc = h.run(['bash', h.TOOLS / args[0], *args[1:]], h.tool_env(tmp_path),
                 tmp_path)
    assert proc.returncode == 2
    assert message in proc.stdout
    assert 'Traceback' not in proc.stdout
