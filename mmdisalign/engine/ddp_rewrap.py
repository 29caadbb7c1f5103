"""Re-wrap a DDP model after some of its parameters were frozen.

``DistributedDataParallel`` registers the parameters that require grad when
it is constructed, which the mmengine ``Runner`` does in ``__init__``,
before any hook runs. If a hook freezes parameters later, DDP's reducer still
waits for their gradients and the second iteration fails with "Expected to
have finished reduction in the prior iteration ..." unless
``find_unused_parameters=True`` (which costs a graph traversal every
iteration).

:func:`rewrap_ddp` builds a new wrapper around the same module, with the
arguments the ``Runner`` used for the first one (``model_wrapper_cfg``, or
the Runner's defaults when it is None), so that only the trainable
parameters are registered. Why this is sound:

- The module and its parameter objects are unchanged, so the optimizer
  (built from ``runner.model.module`` before the hooks run) still updates
  exactly the same tensors.
- Loops and hooks look ``runner.model`` up whenever they use it
  (``runner.model.train_step``, ``runner.model.train()``); mmengine's own
  ``TestTimeAugHook`` replaces ``runner.model`` the same way. Hooks that kept
  a reference keep the inner module (``EMAHook``), which does not change.
- The new wrapper broadcasts rank 0's parameters at construction, which are
  the stage-1 weights every rank loaded anyway.
- The old wrapper has not run a forward pass, so its reducer never expects
  a gradient; it is released here, which removes its autograd hooks.
- When ``compile`` is configured, the compiled ``train_step`` of the old
  wrapper is recompiled for the new one.
"""
import copy
import gc
from typing import Any

from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS
from torch.nn.parallel import DistributedDataParallel

__all__ = ['rewrap_ddp']


def rewrap_ddp(runner: Any) -> bool:
    """Replace ``runner.model`` by a fresh DDP wrapper of the same module.

    Args:
        runner (Runner): The mmengine runner whose model to re-wrap.

    Returns:
        bool: True if the model was re-wrapped, False if it is not a
        ``DistributedDataParallel`` (nothing to do).

    Raises:
        TypeError: If the wrapper was not built by the runner (a pre-wrapped
            model of another type than ``model_wrapper_cfg`` describes) and
            does not set ``find_unused_parameters=True``.
    """
    old = runner.model
    if not isinstance(old, DistributedDataParallel):
        return False
    module = old.module
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
    # The Runner's default is [LOCAL_RANK]; the old wrapper holds the same
    # value after DDP normalised it (None for CPU modules).
    kwargs.setdefault('device_ids', old.device_ids)
    compiled = 'train_step' in vars(old)
    runner.model = wrapper_type(module=module, **kwargs)
    # Release the old wrapper now: its reducer's autograd hooks go with it.
    del old
    gc.collect()
    if compiled and hasattr(runner, '_maybe_compile'):
        runner._maybe_compile('train_step')
    return True
