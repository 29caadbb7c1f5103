"""mmdisalign.launch: SLURM/MPI variables, ports, CPU DDP, data-size check,
and the command line of tools/train.py and tools/test.py."""
import os
import socket
import stat
import subprocess
import sys
import types

import pytest
from mmengine.config import Config

from mmdisalign import launch
from mmdisalign.launch import (LaunchError, check_num_samples,
                               check_port_free, cpu_model_wrapper_cfg,
                               first_host, mpi_env, parse_first_host,
                               port_in_use, setup_distributed, slurm_env)

DIST_VARS = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR',
             'MASTER_PORT')


@pytest.fixture
def clean_env(monkeypatch):
    """No launcher variables in os.environ; the whole environment is
    restored afterwards (setup_distributed exports variables itself)."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name in DIST_VARS or name.startswith(('SLURM_', 'OMPI_')):
            monkeypatch.delenv(name)
    yield monkeypatch
    os.environ.clear()
    os.environ.update(saved)


@pytest.mark.parametrize('nodelist, first', [
    ('node7', 'node7'),
    ('a01,b02', 'a01'),
    ('cn[003-005,009],gpu1', 'cn003'),
    ('cn[009,003-005]', 'cn009'),
    ('gpu-[1-4]', 'gpu-1'),
    ('rack[1-2]-n[04-05]', 'rack1-n04'),
    ('127.0.0.[1-2]', '127.0.0.1'),
    (' host ', 'host'),
])
def test_parse_first_host(nodelist, first):
    assert parse_first_host(nodelist) == first


@pytest.mark.parametrize('nodelist', ['', '   ', 'cn[1-2', 'cn]1', ',a',
                                      'cn[]'])
def test_parse_first_host_rejects(nodelist):
    with pytest.raises(ValueError, match='SLURM node list'):
        parse_first_host(nodelist)


def test_first_host_prefers_scontrol(tmp_path, monkeypatch):
    fake = tmp_path / 'scontrol'
    fake.write_text('#!/bin/sh\n[ "$1 $2" = "show hostnames" ] || exit 3\n'
                    'echo expanded-$3\necho second\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv('PATH', f'{tmp_path}:{os.environ["PATH"]}')
    assert first_host('cn[1-2]') == 'expanded-cn[1-2]'
    fake.write_text('#!/bin/sh\nexit 1\n')  # broken scontrol: the parser
    assert first_host('cn[1-2]') == 'cn1'


def test_slurm_env(clean_env):
    env = dict(
        SLURM_PROCID='3',
        SLURM_NTASKS='4',
        SLURM_LOCALID='1',
        SLURM_NODELIST='job[1-9]',
        SLURM_STEP_NODELIST='step[5-6]')
    assert slurm_env(env) == dict(
        RANK='3',
        WORLD_SIZE='4',
        LOCAL_RANK='1',
        MASTER_PORT='29500',
        MASTER_ADDR='step5')
    env.update(MASTER_ADDR='10.0.0.1', MASTER_PORT='1234')
    assert slurm_env(env)['MASTER_ADDR'] == '10.0.0.1'
    assert slurm_env(env)['MASTER_PORT'] == '1234'
    assert slurm_env(env, port=4321)['MASTER_PORT'] == '4321'
    del env['SLURM_STEP_NODELIST'], env['MASTER_ADDR']
    assert slurm_env(env)['MASTER_ADDR'] == 'job1'
    with pytest.raises(LaunchError, match='SLURM_LOCALID'):
        slurm_env({k: v for k, v in env.items() if k != 'SLURM_LOCALID'})
    with pytest.raises(LaunchError, match='SLURM_PROCID=4 is not below'):
        slurm_env(dict(env, SLURM_PROCID='4'))
    with pytest.raises(LaunchError, match="SLURM_NTASKS='x'"):
        slurm_env(dict(env, SLURM_NTASKS='x'))
    with pytest.raises(LaunchError, match='node list'):
        slurm_env({k: v for k, v in env.items() if 'NODELIST' not in k})
    with pytest.raises(ValueError, match='Invalid port'):
        slurm_env(env, port=70000)


def test_mpi_env():
    env = dict(
        OMPI_COMM_WORLD_RANK='2',
        OMPI_COMM_WORLD_SIZE='8',
        OMPI_COMM_WORLD_LOCAL_RANK='2',
        MASTER_ADDR='h0')
    assert mpi_env(env) == dict(
        RANK='2',
        WORLD_SIZE='8',
        LOCAL_RANK='2',
        MASTER_PORT='29500',
        MASTER_ADDR='h0')
    with pytest.raises(LaunchError, match='MASTER_ADDR'):
        mpi_env({k: v for k, v in env.items() if k != 'MASTER_ADDR'})


def test_port_checks():
    with socket.socket() as busy:
        busy.bind(('', 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert port_in_use(port)
        with pytest.raises(LaunchError,
                           match=f'Master port {port} is already in use.*'
                           r'MASTER_PORT=\d+'):
            check_port_free(port, variable='MASTER_PORT')
    assert not port_in_use(port)
    check_port_free(port)
    with pytest.raises(ValueError, match='Invalid port'):
        check_port_free('http')


def test_launch_file_runs_without_torch(tmp_path):
    """The shell launchers run mmdisalign/launch.py as a file: it must not
    import torch, and must answer both commands."""
    path = launch.__file__
    code = ('import runpy, sys; sys.argv = ["launch.py", "first-host", '
            '"cn[07-09]"]\ntry:\n    runpy.run_path(%r, run_name="__main__")'
            '\nexcept SystemExit as e:\n    assert e.code == 0\n'
            'assert "torch" not in sys.modules, "torch imported"\n' % path)
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'cn07'
    with socket.socket() as busy:
        busy.bind(('', 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run(
            [sys.executable, path, 'check-port',
             str(port)],
            capture_output=True,
            text=True)
    assert out.returncode == 1
    assert f'Error: Master port {port} is already in use' in out.stderr


def test_cpu_model_wrapper_cfg():
    cfg = Config(dict(find_unused_parameters=True))
    assert cpu_model_wrapper_cfg(cfg) == dict(
        type='MMDistributedDataParallel',
        device_ids=None,
        broadcast_buffers=False,
        find_unused_parameters=True)
    cfg = Config(
        dict(model_wrapper_cfg=dict(type='MMDistributedDataParallel')))
    assert cpu_model_wrapper_cfg(cfg)['device_ids'] is None
    cfg = Config(
        dict(model_wrapper_cfg=dict(type='MMSeparateDistributedDataParallel'))
    )  # a DDP subclass that passes device_ids on to its inner wrappers
    assert cpu_model_wrapper_cfg(cfg)['device_ids'] is None
    cfg = Config(dict(model_wrapper_cfg=dict(device_ids=[0])))  # explicit
    assert cpu_model_wrapper_cfg(cfg)['device_ids'] == [0]
    cfg = Config(dict(model_wrapper_cfg=dict(type='NotADDPWrapper')))
    assert 'device_ids' not in cpu_model_wrapper_cfg(cfg)


def test_setup_distributed_checks_the_launch(clean_env):
    cfg = Config(dict())
    assert setup_distributed(cfg, 'none') is False
    clean_env.setenv('WORLD_SIZE', '2')
    with pytest.raises(LaunchError, match='WORLD_SIZE=2.*--launcher pytorch'):
        setup_distributed(cfg, 'none')
    clean_env.setenv('RANK', '0')
    with pytest.raises(LaunchError,
                       match='MASTER_ADDR, MASTER_PORT are not set'):
        setup_distributed(cfg, 'pytorch')
    with pytest.raises(ValueError, match='Unknown launcher'):
        setup_distributed(cfg, 'torchrun')
    with pytest.raises(LaunchError, match='SLURM_PROCID'):
        setup_distributed(cfg, 'slurm')


def test_setup_distributed_slurm_rank0_checks_port(clean_env):
    with socket.socket() as busy:
        busy.bind(('', 0))
        busy.listen()
        port = busy.getsockname()[1]
        for name, value in dict(
                SLURM_PROCID='0',
                SLURM_NTASKS='2',
                SLURM_LOCALID='0',
                SLURM_NODELIST='localhost').items():
            clean_env.setenv(name, value)
        cfg = Config(dict(env_cfg=dict(dist_cfg=dict(port=port))))
        with pytest.raises(LaunchError, match=f'{port} is already in use'):
            setup_distributed(cfg, 'slurm')
    # The variables were exported before the check, as mmengine does.
    assert os.environ['RANK'] == '0' and os.environ['WORLD_SIZE'] == '2'
    assert os.environ['MASTER_ADDR'] == 'localhost'
    assert os.environ['MASTER_PORT'] == str(port)


def _fake_runner(world_size, **lengths):
    runner = types.SimpleNamespace(world_size=world_size)
    for name in ('train', 'val', 'test'):
        loop = {}  # a loop that is not built yet is a dict
        if name in lengths:
            loop = types.SimpleNamespace(
                dataloader=types.SimpleNamespace(dataset=[0] *
                                                 lengths[name]))
        setattr(runner, f'_{name}_loop', loop)
    return runner


def test_data_size_check():
    hook = launch.DataSizeCheckHook()
    assert hook.priority == 'VERY_HIGH'
    hook.before_run(_fake_runner(2, train=2, val=5))
    hook.before_run(_fake_runner(1, test=1))
    with pytest.raises(ValueError,
                       match='train_dataloader.dataset has 1 sample.*2 '
                       'processes.*at most 1 processes'):
        hook.before_run(_fake_runner(2, train=1, val=10))
    with pytest.raises(ValueError, match='test_dataloader.dataset has 3'):
        hook.before_run(_fake_runner(4, test=3))
    with pytest.raises(ValueError, match='val_dataloader.dataset is empty'):
        hook.before_run(_fake_runner(1, train=5, val=0))
    check_num_samples(8, 8, 'x')


def test_local_rank_arguments(h, clean_env):
    train = h.load_tool('train')
    args = train.parse_args(['cfg.py', '--local-rank', '3'])
    assert args.local_rank == 3 and os.environ['LOCAL_RANK'] == '3'
    clean_env.delenv('LOCAL_RANK')
    args = train.parse_args(['cfg.py', '--local_rank=2', '--launcher',
                             'pytorch'])
    assert (args.local_rank, args.launcher) == (2, 'pytorch')
    assert os.environ['LOCAL_RANK'] == '2'
    # torchrun's LOCAL_RANK wins over the (default) argument
    clean_env.setenv('LOCAL_RANK', '5')
    test = h.load_tool('test')
    args = test.parse_args(['cfg.py', 'ckpt.pth', '--local-rank', '0'])
    assert os.environ['LOCAL_RANK'] == '5'
    assert h.load_tool('test').parse_args(
        ['c.py', 'k.pth']).launcher == 'none'


def test_train_merge_args(h, tmp_path):
    train = h.load_tool('train')
    cfg = Config(
        dict(
            optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
            load_from='stage1.pth',
            train_dataloader=dict(batch_size=2, pin_memory=True),
            val_dataloader=dict(batch_size=2),
            val_cfg=dict(),
            val_evaluator=dict(type='Accuracy')))
    args = train.parse_args([
        'configs/x/my_config.py', '--no-validate', '--no-pin-memory',
        '--no-persistent-workers', '--cfg-options', 'train_cfg.max_epochs=3'
    ])
    out = train.merge_args(cfg, args)
    assert out.work_dir == os.path.join('./work_dirs', 'my_config')
    assert out.val_dataloader is None and out.val_cfg is None
    assert out.train_dataloader.pin_memory is False
    assert out.train_dataloader.persistent_workers is False
    assert out.train_cfg.max_epochs == 3
    assert out.get('resume', False) is False and out.load_from == 'stage1.pth'

    # --resume without a checkpoint in the work dir: start from load_from
    work = tmp_path / 'w'
    work.mkdir()
    cfg = Config(dict(load_from='stage1.pth'))
    args = train.parse_args(['x.py', '--work-dir', str(work), '--resume'])
    out = train.merge_args(cfg, args)
    assert (out.resume, out.load_from) == (False, 'stage1.pth')
    # ... with one: mmengine's auto-resume (load_from None)
    (work / 'epoch_1.pth').write_bytes(b'')
    (work / 'last_checkpoint').write_text(str(work / 'epoch_1.pth'))
    out = train.merge_args(Config(dict(load_from='stage1.pth')), args)
    assert (out.resume, out.load_from) == (True, None)
    args = train.parse_args(['x.py', '--resume', 'other.pth'])
    out = train.merge_args(Config(dict(load_from='stage1.pth')), args)
    assert (out.resume, out.load_from) == (True, 'other.pth')

    args = train.parse_args(['x.py', '--auto-scale-lr'])
    with pytest.raises(ValueError, match='base_batch_size'):
        train.merge_args(Config(dict()), args)
    out = train.merge_args(
        Config(dict(auto_scale_lr=dict(base_batch_size=64))), args)
    assert out.auto_scale_lr.enable is True

    args = train.parse_args(['x.py', '--amp'])
    with pytest.raises(ValueError, match='--amp needs a GPU'):
        train.merge_args(Config(dict(optim_wrapper=dict())), args)


def test_test_merge_args(h):
    test = h.load_tool('test')
    cfg = Config(
        dict(
            default_scope='mmpretrain',
            default_hooks=dict(visualization=dict(type='VisualizationHook')),
            test_evaluator=dict(type='Accuracy')))
    args = test.parse_args(
        ['x.py', 'k.pth', '--show-dir', 'vis', '--interval', '3'])
    out = test.merge_args(cfg, args)
    assert out.load_from == 'k.pth' and out.resume is False
    assert out.default_hooks.visualization == dict(
        type='VisualizationHook',
        enable=True,
        show=False,
        wait_time=2,
        interval=3,
        out_dir='vis')
    with pytest.raises(ValueError, match='--out must be a .pkl file'):
        test.merge_args(cfg, test.parse_args(['x.py', 'k', '--out', 'p.txt']))
    with pytest.raises(ValueError, match='--tta needs tta_model'):
        test.merge_args(cfg, test.parse_args(['x.py', 'k', '--tta']))

    seg = Config(
        dict(
            default_scope='mmseg',
            default_hooks=dict(
                visualization=dict(type='SegVisualizationHook')),
            visualizer=dict(type='SegLocalVisualizer'),
            test_evaluator=dict(type='IoUMetric')))
    out = test.merge_args(
        seg,
        test.parse_args(['x.py', 'k', '--out', 'maps', '--show-dir', 'v']))
    assert out.test_evaluator == dict(
        type='IoUMetric', output_dir='maps', keep_results=True)
    assert out.visualizer.save_dir == 'v'
    assert out.default_hooks.visualization.draw is True

    det = Config(
        dict(
            default_scope='mmdet',
            default_hooks=dict(
                visualization=dict(type='DetVisualizationHook'))))
    out = test.merge_args(det, test.parse_args(['x.py', 'k', '--show-dir',
                                                'v']))
    assert out.default_hooks.visualization == dict(
        type='DetVisualizationHook', draw=True, test_out_dir='v')
    with pytest.raises(ValueError, match='need a visualization hook'):
        test.merge_args(
            Config(dict(default_scope='mmdet', default_hooks=dict())),
            test.parse_args(['x.py', 'k', '--show']))
