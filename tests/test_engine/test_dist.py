"""mmdisalign.engine.dist: the gloo process group and the CPU DDP wrapper
that mmengine 0.10.7 does not set up without a GPU."""
import json
import os
import socket
import subprocess
import sys

import pytest
from mmengine.config import Config

from mmdisalign.engine.dist import cpu_model_wrapper_cfg, setup_cpu_dist

# Run in a fresh process: it starts a process group (of one).
SETUP_SCRIPT = '''
import json, os, sys
import torch.distributed as dist
from mmengine.config import Config
from mmdisalign.engine.dist import setup_cpu_dist
cfg = Config(dict(launcher=sys.argv[1],
                  env_cfg=dict(dist_cfg=dict(backend='nccl', timeout=60))))
setup_cpu_dist(cfg)
print(json.dumps(dict(
    backend=dist.get_backend(), rank=dist.get_rank(),
    world_size=dist.get_world_size(),
    env={k: os.environ.get(k) for k in (
        'RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT')},
    wrapper=cfg.model_wrapper_cfg.to_dict())))
dist.destroy_process_group()
'''


def _free_port():
    with socket.socket() as sock:
        sock.bind(('', 0))
        return sock.getsockname()[1]


def _run_setup(launcher, **env):
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(('SLURM_', 'OMPI_')) and k not in (
            'RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT')
    }
    base['CUDA_VISIBLE_DEVICES'] = ''  # no GPU, even where there is one
    base.update(env)
    out = subprocess.run([sys.executable, '-c', SETUP_SCRIPT, launcher],
                         env=base,
                         capture_output=True,
                         text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


DEFAULT_WRAPPER = dict(
    type='MMDistributedDataParallel',
    broadcast_buffers=False,
    find_unused_parameters=False,
    device_ids=None)


def test_setup_cpu_dist_torchrun():
    """--launcher pytorch: the variables of torchrun, gloo instead of the
    configured nccl."""
    port = _free_port()
    result = _run_setup(
        'pytorch',
        RANK='0',
        WORLD_SIZE='1',
        LOCAL_RANK='0',
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(port))
    assert (result['backend'], result['rank'],
            result['world_size']) == ('gloo', 0, 1)
    assert result['wrapper'] == DEFAULT_WRAPPER


def test_setup_cpu_dist_slurm():
    """--launcher slurm: mmengine's init_dist derives the variables from
    srun's (MASTER_ADDR given, as scontrol is missing here)."""
    port = _free_port()
    result = _run_setup(
        'slurm',
        SLURM_PROCID='0',
        SLURM_NTASKS='1',
        SLURM_LOCALID='0',
        SLURM_NODELIST='localhost',
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(port))
    assert (result['backend'], result['world_size']) == ('gloo', 1)
    assert result['env'] == dict(
        RANK='0',
        WORLD_SIZE='1',
        LOCAL_RANK='0',
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(port))
    assert result['wrapper'] == DEFAULT_WRAPPER


def test_launcher_none(monkeypatch):
    cfg = Config(dict(launcher='none'))
    monkeypatch.delenv('WORLD_SIZE', raising=False)
    setup_cpu_dist(cfg)
    assert 'model_wrapper_cfg' not in cfg
    monkeypatch.setenv('WORLD_SIZE', '2')
    with pytest.raises(RuntimeError, match='WORLD_SIZE=2.*--launcher pytorch'):
        setup_cpu_dist(cfg)


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
