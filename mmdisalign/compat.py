"""Make mmengine 0.10.7 load its own checkpoints on torch >= 2.6.

Since torch 2.6, :func:`torch.load` defaults to ``weights_only=True``. The
local-file loader of mmengine 0.10.7 calls ``torch.load(filename,
map_location=...)`` without ``weights_only``, so every checkpoint written by
the mmengine ``Runner`` (its ``meta`` and ``message_hub`` hold
``HistoryBuffer`` and numpy objects) fails to load with an
``UnpicklingError``. That breaks ``load_from`` (stage 2 of DisAlign),
``resume``, ``init_cfg=dict(type='Pretrained', checkpoint=<local file>)`` and
``load_checkpoint(model, <local file>)``.

Importing this module (``import mmdisalign`` does it first) replaces the
loader that mmengine's :class:`~mmengine.runner.checkpoint.CheckpointLoader`
uses for local paths (the scheme with the empty prefix) by
:func:`load_from_local`, which passes ``weights_only=False``. Every local
load in mmengine goes through that scheme: ``Runner.load_checkpoint``,
``Runner.resume`` (which calls ``Runner.load_checkpoint``),
``mmengine.runner.load_checkpoint`` and ``PretrainedInit``. Remote schemes
are left alone: ``http(s)://``, ``torchvision://`` and ``mmcls://`` go
through ``torch.hub.load_state_dict_from_url``, whose default is still
``weights_only=False``.

``weights_only=False`` unpickles arbitrary Python objects, which can run code.
Only load checkpoint files that you trust (your own stage-1 runs or
checkpoints from a source you trust). No environment variable is read or set.
"""
import inspect
import os.path as osp
from typing import Any, Callable, Optional, Union

import torch
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = ['load_from_local', 'install_local_checkpoint_loader']

#: ``torch.load`` accepts ``weights_only`` since torch 1.13.
_HAS_WEIGHTS_ONLY = 'weights_only' in inspect.signature(torch.load).parameters


def load_from_local(
        filename: str,
        map_location: Optional[Union[str, torch.device,
                                     Callable]] = None) -> Any:
    """Load a trusted local checkpoint file with ``weights_only=False``.

    Drop-in replacement for mmengine's ``load_from_local``: same arguments,
    same ``~`` expansion, same ``map_location`` semantics as
    :func:`torch.load`.

    Args:
        filename (str): Path of the checkpoint file. ``~`` is expanded.
        map_location (str | torch.device | Callable, optional): Passed to
            :func:`torch.load` unchanged. Defaults to None.

    Returns:
        Any: The unpickled checkpoint, usually a dict.

    Raises:
        FileNotFoundError: If ``filename`` is not an existing file.
    """
    path = osp.expanduser(filename)
    if not osp.isfile(path):
        where = '' if osp.abspath(path) == path else \
            f' (resolved to {osp.abspath(path)!r})'
        what = 'is a directory, not a file' if osp.isdir(path) \
            else 'does not exist'
        raise FileNotFoundError(
            f'Checkpoint file {filename!r}{where} {what}. Check the path '
            'given to `load_from`, `resume` or `init_cfg.checkpoint`.')
    if _HAS_WEIGHTS_ONLY:
        return torch.load(path, map_location=map_location, weights_only=False)
    return torch.load(path, map_location=map_location)  # pragma: no cover


def install_local_checkpoint_loader() -> None:
    """Register :func:`load_from_local` for local paths in mmengine.

    Safe to call any number of times: it (re)registers the same scheme with
    ``force=True``.
    """
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)


install_local_checkpoint_loader()
