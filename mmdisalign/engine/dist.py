"""Multi-process runs without an accelerator: what mmengine 0.10.7 lacks
(``init_dist`` calls ``torch.cuda.set_device``, the Runner's DDP gets
``device_ids=[LOCAL_RANK]``). See docs/launch.md."""
import os
from typing import Any, Tuple

import torch
from mmengine.device import get_device
from mmengine.dist import init_dist, is_distributed
from mmengine.registry import MODEL_WRAPPERS
from torch.nn.parallel import DistributedDataParallel

__all__ = ['setup_cpu_dist', 'cpu_model_wrapper_cfg', 'runner_wrapper_cfg']


def setup_cpu_dist(cfg) -> None:
    """Start a gloo process group and a CPU DDP wrapper if there is no GPU.

    Call it before the ``Runner`` is built; ``Runner.setup_env`` then skips
    ``init_dist`` because the process group exists. With an accelerator, or
    with ``launcher='none'``, it does nothing.

    Args:
        cfg (Config): The complete config, with ``launcher`` set. Its
            ``model_wrapper_cfg`` gets ``device_ids=None`` (in place).

    Raises:
        RuntimeError: If ``launcher`` is ``'none'`` inside a job of several
            processes (``WORLD_SIZE`` > 1, e.g. torchrun): each process would
            silently train its own copy of the model.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none':
        world_size = os.environ.get('WORLD_SIZE', '1')
        if world_size.isdigit() and int(world_size) > 1:
            raise RuntimeError(
                f'This process belongs to a job of WORLD_SIZE={world_size} '
                'processes (torchrun?), but --launcher is none: every '
                'process would train its own copy. Pass --launcher pytorch.')
        return
    if get_device() not in ('cpu', 'mps'):
        return
    if not is_distributed():
        dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}))
        dist_cfg['backend'] = 'gloo'
        set_device = torch.cuda.set_device
        torch.cuda.set_device = lambda device: None  # the call needing CUDA
        try:
            init_dist(launcher, **dist_cfg)
        finally:
            torch.cuda.set_device = set_device
    cpu_model_wrapper_cfg(cfg)


def runner_wrapper_cfg(cfg) -> Tuple[Any, dict]:
    """The wrapper class and config ``Runner.wrap_model`` uses:
    ``cfg.model_wrapper_cfg`` or, without one, the Runner's default."""
    wrapper_cfg = cfg.get('model_wrapper_cfg')
    if wrapper_cfg is None:
        wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper_type = wrapper_cfg.get('type', 'MMDistributedDataParallel')
    if isinstance(wrapper_type, str):
        wrapper_type = MODEL_WRAPPERS.get(wrapper_type)
    return wrapper_type, wrapper_cfg


def cpu_model_wrapper_cfg(cfg) -> dict:
    """Make the ``Runner`` build its DDP wrapper with ``device_ids=None``.

    A wrapper config of a DDP subclass (or the Runner's default) gets
    ``device_ids=None`` unless it sets them; other wrappers are left alone.

    Args:
        cfg (Config): The config; changed in place.

    Returns:
        dict: The resulting ``model_wrapper_cfg``.
    """
    wrapper_type, wrapper_cfg = runner_wrapper_cfg(cfg)
    if isinstance(wrapper_type, type) and issubclass(wrapper_type,
                                                     DistributedDataParallel):
        wrapper_cfg.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper_cfg
    return cfg.model_wrapper_cfg
