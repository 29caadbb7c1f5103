"""tools/dist_train.sh inside a SLURM allocation, started once per node by
``srun``: NNODES, NODE_RANK and MASTER_ADDR come from the SLURM variables.

Two "nodes" on this machine (stand-in ``srun`` of conftest.py), one process
each: the trained calibration must match the one-process run as in
test_dist_torchrun.py.
"""


def test_dist_train_under_srun_two_nodes(h, tmp_path, probe_dir, fake_srun,
                                         cls_stage1, cls_stage2_config,
                                         cls_single):
    """``srun --nodes=2 --ntasks-per-node=1 tools/dist_train.sh CONFIG 1``:
    each "node" runs torchrun with NNODES, NODE_RANK and MASTER_ADDR taken
    from SLURM_NNODES, SLURM_NODEID and the node list (no scontrol here, so
    the built-in parser reads '127.0.0.[1-2]' as 127.0.0.1)."""
    bin_dir, log = fake_srun
    work_dir = tmp_path / 'work'
    env = h.tool_env(
        probe_dir,
        PORT=h.free_port(),
        FAKE_SRUN_LOG=log,
        FAKE_SRUN_NODELIST='127.0.0.[1-2]')
    env['PATH'] = f'{bin_dir}:{env["PATH"]}'
    proc = h.run([
        'srun', '--nodes=2', '--ntasks-per-node=1', 'bash',
        h.TOOLS / 'dist_train.sh', cls_stage2_config, 1, '--work-dir',
        work_dir, '--cfg-options',
        f'train_dataloader.batch_size={h.TOTAL_BATCH // 2}'
    ], env, tmp_path)
    h.check_ok(proc)
    found = h.probes(work_dir, 2)
    h.assert_matches_single(found, cls_single, cls_stage1)
