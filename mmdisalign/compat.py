"""Make mmengine 0.10.7 load its own checkpoints on torch >= 2.6.

torch 2.6 made ``weights_only=True`` the default of :func:`torch.load`, which
rejects every Runner checkpoint. Importing this module (``import mmdisalign``
does it first) registers :func:`load_from_local` for local paths in
mmengine's ``CheckpointLoader``. Only load checkpoints you trust. See
docs/stage2.md.
"""
import os.path as osp
from typing import Any, Callable, Optional, Union

import torch
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = ['load_from_local', 'install_local_checkpoint_loader']


def load_from_local(
        filename: str,
        map_location: Optional[Union[str, torch.device,
                                     Callable]] = None) -> Any:
    """mmengine's ``load_from_local`` with ``weights_only=False``: same
    arguments, ``~`` expansion and ``map_location`` semantics.

    Args:
        filename (str): Path of the checkpoint file.
        map_location (str | torch.device | Callable, optional): Passed to
            :func:`torch.load`. Defaults to None.

    Returns:
        Any: The unpickled checkpoint.
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
    return torch.load(path, map_location=map_location, weights_only=False)


def install_local_checkpoint_loader() -> None:
    """Register :func:`load_from_local` for local paths (idempotent)."""
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)


install_local_checkpoint_loader()
