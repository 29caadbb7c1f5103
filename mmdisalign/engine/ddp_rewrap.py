"""Re-wrap a DDP model after some of its parameters were frozen.

DDP registers the parameters that require grad when it is built, in
``Runner.__init__``, before any hook runs; after a hook freezes some, the
reducer waits for their gradients and the second iteration fails ("Expected
to have finished reduction ...") unless ``find_unused_parameters=True``,
which costs a graph traversal per iteration. :func:`rewrap_ddp` wraps the
same module again with the Runner's arguments. The parameter objects do not
change, so the optimizer is unaffected; loops and hooks look
``runner.model`` up when they use it (mmengine's ``TestTimeAugHook``
replaces it the same way); the old wrapper has run no forward pass and is
released with its autograd hooks. See docs/stage2.md.
"""
import copy
import gc
from typing import Any

import torch
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS
from torch.nn.parallel import DistributedDataParallel

__all__ = ['rewrap_ddp']


def rewrap_ddp(runner: Any) -> bool:
    """Replace ``runner.model`` by a fresh DDP wrapper of the same module.

    Args:
        runner (Runner): The mmengine runner.

    Returns:
        bool: True if re-wrapped; False if the model is no DDP, or a DDP
        the Runner did not build that finds unused parameters itself.
    """
    old = runner.model
    if not isinstance(old, DistributedDataParallel):
        return False
    wrapper_cfg = runner.cfg.get('model_wrapper_cfg')
    if wrapper_cfg is None:
        # What `Runner.wrap_model` builds without a `model_wrapper_cfg`.
        wrapper_type = MMDistributedDataParallel
        kwargs = dict(
            broadcast_buffers=False,
            find_unused_parameters=runner.cfg.get('find_unused_parameters',
                                                  False))
    else:
        kwargs = copy.deepcopy(dict(wrapper_cfg))
        wrapper_type = kwargs.pop('type', 'MMDistributedDataParallel')
        if isinstance(wrapper_type, str):
            wrapper_type = MODEL_WRAPPERS.get(wrapper_type)
    if type(old) is not wrapper_type:
        if old.find_unused_parameters:
            return False
        raise TypeError(
            f'runner.model is a {type(old).__name__} that the Runner did not '
            f'build from model_wrapper_cfg={wrapper_cfg!r}, so it cannot be '
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
