"""Multi-process stage 2 and test through SLURM, on the CPU (gloo):
tools/slurm_train.sh and tools/slurm_test.sh.

SLURM is played by a stand-in ``srun`` on ``PATH`` (fixture ``fake_srun``
in conftest.py) that starts the tasks with the variables a real one sets
(``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``, ``SLURM_NODEID``,
``SLURM_NNODES``, the node lists, ...) and records its command line. The
trained calibration must match the one-process run as in
test_dist_torchrun.py.
"""
import json

import pytest


def test_slurm_train_with_stand_in_srun(h, tmp_path, probe_dir, fake_srun,
                                        cls_stage1, cls_stage2_config,
                                        cls_single):
    """tools/slurm_train.sh: srun's command line, then 2 tasks with
    --launcher slurm (the gloo group is built from the SLURM variables)."""
    bin_dir, log = fake_srun
    work_dir = tmp_path / 'work'
    env = h.tool_env(
        probe_dir,
        GPUS=2,
        GPUS_PER_NODE=2,
        CPUS_PER_TASK=1,
        SRUN_ARGS='--time=10 --exclusive',
        PORT=h.free_port(),
        FAKE_SRUN_LOG=log)
    env['PATH'] = f'{bin_dir}:{env["PATH"]}'
    proc = h.run([
        'bash', h.TOOLS / 'slurm_train.sh', 'debug', 'disalign',
        cls_stage2_config, '--work-dir', work_dir, '--cfg-options',
        f'train_dataloader.batch_size={h.TOTAL_BATCH // 2}'
    ], env, tmp_path)
    h.check_ok(proc)
    call = json.loads(log.read_text().splitlines()[0])
    assert call['opts'] == {
        'p': 'debug',
        'job-name': 'disalign',
        'gres': 'gpu:2',
        'ntasks': '2',
        'ntasks-per-node': '2',
        'cpus-per-task': '1',
        'kill-on-bad-exit': '1',
        'time': '10',
        'exclusive': ''
    }
    assert call['cmd'][:5] == [
        h.PYTHON, '-u',
        str(h.TOOLS / 'train.py'),
        str(cls_stage2_config), '--launcher=slurm'
    ]
    found = h.probes(work_dir, 2)
    h.assert_matches_single(found, cls_single, cls_stage1)


def test_slurm_test_matches_single(h, tmp_path, probe_dir, fake_srun,
                                   cls_stage2_config, cls_single_test):
    """tools/slurm_test.sh, one task (--launcher slurm, GRES= for a CPU
    partition), predicts what tools/test.py predicts in one process."""
    ckpt, single, _ = cls_single_test
    bin_dir, log = fake_srun
    env = h.tool_env(
        probe_dir,
        GPUS=1,
        GPUS_PER_NODE=1,
        CPUS_PER_TASK=1,
        GRES='',
        PORT=h.free_port(),
        FAKE_SRUN_LOG=log)
    env['PATH'] = f'{bin_dir}:{env["PATH"]}'
    proc = h.run([
        'bash', h.TOOLS / 'slurm_test.sh', 'debug', 'disalign-test',
        cls_stage2_config, ckpt, '--work-dir', tmp_path / 'slurm', '--out',
        tmp_path / 'slurm.pkl'
    ], env, tmp_path)
    h.check_ok(proc)
    call = json.loads(log.read_text().splitlines()[0])
    assert 'gres' not in call['opts']  # GRES= drops it
    assert call['cmd'][2:6] == [
        str(h.TOOLS / 'test.py'),
        str(cls_stage2_config),
        str(ckpt), '--launcher=slurm'
    ]
    slurm = h.predictions(tmp_path / 'slurm.pkl')
    assert slurm.keys() == single.keys()
    assert max((slurm[k] - single[k]).abs().max().item() for k in single) \
        < h.ATOL


@pytest.mark.parametrize('args', [
    ['slurm_train.sh'],
    ['slurm_train.sh', 'debug', 'disalign'],
    ['slurm_test.sh', 'debug', 'disalign-test', 'x.py'],
])
def test_slurm_scripts_print_usage(h, tmp_path, fake_srun, args):
    """Missing arguments: a usage line and exit status 2; srun never runs."""
    bin_dir, log = fake_srun
    env = h.tool_env(tmp_path, FAKE_SRUN_LOG=log)
    env['PATH'] = f'{bin_dir}:{env["PATH"]}'
    proc = h.run(['bash', h.TOOLS / args[0], *args[1:]], env, tmp_path)
    assert proc.returncode == 2
    assert proc.stdout.startswith(f'Usage: {h.TOOLS / args[0]} PARTITION '
                                  'JOB_NAME CONFIG')
    assert not log.exists()
