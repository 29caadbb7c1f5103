"""Re-wrap a DDP model after some of its parameters were frozen (DDP
registers them when the Runner builds it). See docs/stage2.md."""
import copy
import gc
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from .dist import runner_wrapper_cfg

__all__ = ['rewrap_ddp']


def rewrap_ddp(runner: Any) -> bool:
    """Replace ``runner.model`` by a fresh DDP wrapper of the same module,
    built with the Runner's arguments (the optimizer keeps the same
    parameter objects).

    Args:
        runner (Runner): The mmengine runner.

    Returns:
        bool: True if re-wrapped; False if the model is no DDP, or a DDP
        the Runner did not build that finds unused parameters itself.
    """
    old = runner.model
    if not isinstance(old, DistributedDataParallel):
        return False
    wrapper_type, wrapper_cfg = runner_wrapper_cfg(runner.cfg)
    kwargs = copy.deepcopy(dict(wrapper_cfg))
    kwargs.pop('type', None)
    if type(old) is not wrapper_type:
        if old.find_unused_parameters:
            return False
        raise TypeError(
            f'runner.model is a {type(old).__name__} that the Runner did not '
            'build from model_wrapper_cfg='
            f'{runner.cfg.get("model_wrapper_cfg")!r}, so it cannot be '
            'rebuilt with the same settings after freezing. Let the Runner '
            'wrap the model, or build the wrapper with '
            'find_unused_parameters=True.')
    # The old wrapper holds the Runner's device_ids after DDP normalised
    # them (None for CPU modules).
    kwargs.setdefault('device_ids', old.device_ids)
    runner.model = wrapper_type(module=old.module, **kwargs)
    del old  # its reducer's autograd hooks go with it
    gc.collect()
    # `Runner.train` compiled the old wrapper's train_step as `compile`
    # says; do the same for the new one.
    compile_cfg = runner.cfg.get('compile')
    if compile_cfg:
        compile_cfg = {} if compile_cfg is True else dict(compile_cfg)
        runner.model.train_step = torch.compile(runner.model.train_step,
                                                **compile_cfg)
    return True
