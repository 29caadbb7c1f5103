"""tools/dist_train.sh on two "machines": NNODES, NODE_RANK, MASTER_ADDR
and PORT, as on a real cluster, with one process per machine (here both on
this machine, on the CPU with gloo). The trained calibration must match the
one-process run as in test_dist_torchrun.py.
"""
import subprocess


def test_dist_train_two_nodes(h, tmp_path, probe_dir, cls_stage1,
                              cls_stage2_config, cls_single):
    """``NNODES=2 NODE_RANK=r MASTER_ADDR=127.0.0.1 PORT=p
    tools/dist_train.sh CONFIG 1`` started once per "machine"."""
    work_dir = tmp_path / 'work'
    port = h.free_port()
    procs = []
    for node_rank in range(2):
        env = h.tool_env(
            probe_dir,
            NNODES=2,
            NODE_RANK=node_rank,
            MASTER_ADDR='127.0.0.1',
            PORT=port)
        cmd = [
            'bash', h.TOOLS / 'dist_train.sh', cls_stage2_config, 1,
            '--work-dir', work_dir, '--cfg-options',
            f'train_dataloader.batch_size={h.TOTAL_BATCH // 2}'
        ]
        procs.append(
            subprocess.Popen([str(c) for c in cmd],
                             cwd=str(tmp_path),
                             env=env,
                             stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT,
                             text=True))
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, (
            f'exit code {proc.returncode}; last output:\n{out[-6000:]}')
    found = h.probes(work_dir, 2)
    h.assert_matches_single(found, cls_single, cls_stage1)
