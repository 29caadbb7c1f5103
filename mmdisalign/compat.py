"""Load local mmengine checkpoints safely on torch >= 2.6.

mmengine 0.10.7's local loader calls :func:`torch.load` without
``weights_only``; on torch >= 2.6 that means ``weights_only=True`` with
torch's default allow-list, which rejects every Runner checkpoint (its
``message_hub`` holds mmengine ``HistoryBuffer`` objects with numpy arrays).
Importing this module (``import mmdisalign`` does it first) registers
:func:`load_from_local` for local paths in mmengine's ``CheckpointLoader``.
It loads with ``weights_only=True`` plus an allow-list of exactly what
mmengine checkpoints hold besides tensors (:data:`SAFE_GLOBALS_DOC`), added
only for the duration of each load. A file that needs anything else is
refused with :class:`UnsafeCheckpointError`, unless the load runs inside
:func:`trusted_checkpoints` (what ``trust_checkpoint = True`` in a config or
``--trust-checkpoint`` of tools/train.py, tools/test.py and
tools/cache_features.py do). Empty,
truncated, corrupt (zip CRC-32) and non-checkpoint files stop with
:class:`CheckpointReadError` naming the file. See docs/stage2.md.
"""
import contextlib
import contextvars
import os.path as osp
import pickle
import re
import zipfile
from typing import Any, Callable, Iterator, List, Optional, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = [
    'load_from_local', 'install_local_checkpoint_loader',
    'trusted_checkpoints', 'checkpoints_trusted', 'safe_checkpoint_globals',
    'UnsafeCheckpointError', 'CheckpointReadError', 'TRUST_KEY', 'TRUST_HINT'
]

#: The config key that marks the run's checkpoints as trusted.
TRUST_KEY = 'trust_checkpoint'
TRUST_HINT = (
    'Only if you trust this file (e.g. you wrote it yourself), load it with '
    f'`{TRUST_KEY} = True` in the config or `--trust-checkpoint` on '
    'tools/train.py / tools/test.py / tools/cache_features.py (in Python: '
    'inside `with '
    'mmdisalign.compat.trusted_checkpoints():`); that unpickles it with '
    '`weights_only=False`, which can run code stored in it.')
SAFE_GLOBALS_DOC = (
    'tensors and containers, numpy arrays and scalars of numeric dtypes, '
    "mmengine's HistoryBuffer and its statistics methods")
#: ``HistoryBuffer`` pickles its statistics methods (a class-level dict) as
#: ``getattr(HistoryBuffer, name)``; only these names are allowed.
HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')
#: Read in chunks of this many bytes when checking the CRC-32 of a zip.
_CHUNK = 1 << 24

_TRUSTED = contextvars.ContextVar(
    'mmdisalign_trusted_checkpoints', default=False)


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint needs a global outside the allow-list."""


class CheckpointReadError(ValueError):
    """A checkpoint file is empty, corrupt or no checkpoint at all."""


@contextlib.contextmanager
def trusted_checkpoints(trusted: bool = True) -> Iterator[None]:
    """Load local checkpoints with ``weights_only=False`` inside the block.

    Args:
        trusted (bool): False keeps the safe loading (handy to pass a
            config value through). Defaults to True.
    """
    if not isinstance(trusted, bool):
        raise TypeError(f'`{TRUST_KEY}` must be True or False, got '
                        f'{trusted!r} ({type(trusted).__name__})')
    token = _TRUSTED.set(trusted)
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def checkpoints_trusted() -> bool:
    """Whether the current code runs inside :func:`trusted_checkpoints`."""
    return _TRUSTED.get()


def _history_buffer_method(obj: Any, name: str) -> Callable:
    """``getattr`` restricted to what a ``HistoryBuffer`` pickle needs."""
    if obj is HistoryBuffer and name in HISTORY_BUFFER_METHODS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'Unsupported call getattr({obj!r}, {name!r}): only '
        f'getattr(HistoryBuffer, name) for name in {HISTORY_BUFFER_METHODS} '
        'is allowed')


def safe_checkpoint_globals() -> List[Any]:
    """The allow-list added to torch's for ``weights_only=True`` loads.

    Exactly what checkpoints written by mmengine 0.10.7's Runner hold
    besides tensors: ``HistoryBuffer`` (message hub), numpy arrays, dtypes
    and scalars of numeric dtypes (the buffers' logs, ``eta``, metric
    values), and ``getattr`` restricted to ``HistoryBuffer``'s statistics
    methods. numpy's reconstructors are listed under their numpy 1 and
    numpy 2 module names, so files written with either load.
    """
    reconstruct = np.zeros(0).__reduce__()[0]
    scalar = np.float64(0).__reduce__()[0]
    found: List[Any] = [HistoryBuffer, np.ndarray, np.dtype]
    for func in (reconstruct, scalar):
        for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
            found.append((func, f'{module}.{func.__name__}'))
    found += sorted({type(np.dtype(c)) for c in '?bhilqBHILQefd'}, key=str)
    found.append((_history_buffer_method, 'builtins.getattr'))
    return found


@contextlib.contextmanager
def _allow_listed() -> Iterator[None]:
    """Add the allow-list for the block; globals that were already allowed
    (by the user) stay allowed afterwards."""
    if not hasattr(torch.serialization, 'get_unsafe_globals_in_checkpoint'):
        raise RuntimeError(
            'Safe checkpoint loading needs torch >= 2.6 (allow-lists of '
            f'weights_only loads); torch {torch.__version__} is installed. '
            f'Upgrade torch. {TRUST_HINT}')
    present = torch.serialization.get_safe_globals()
    missing = [g for g in safe_checkpoint_globals() if g not in present]
    with torch.serialization.safe_globals(missing):
        yield


def _check_file(path: str, filename: str) -> None:
    """Raise :class:`CheckpointReadError` for an empty file, a file that is
    not in a ``torch.save`` format, or a zip whose CRC-32 fails."""
    if osp.getsize(path) == 0:
        raise CheckpointReadError(
            f'Checkpoint file {filename!r} is empty (0 bytes): the save or '
            'copy that wrote it was interrupted. Write it again or give '
            'another checkpoint.')
    with open(path, 'rb') as file:
        head = file.read(16)
    # A damaged end of the archive makes is_zipfile False: the local header
    # signature at the start still says it is one.
    if not (head.startswith(b'PK\x03\x04') or zipfile.is_zipfile(path)):
        # torch's legacy (pre-1.6) format starts with a pickle, protocol 2+.
        if head[:1] != b'\x80':
            raise CheckpointReadError(
                f'{filename!r} is not a PyTorch checkpoint: it is neither a '
                'zip archive written by torch.save nor torch\'s legacy '
                f'format (it starts with {head!r}). Give the .pth file '
                'written by the training run.')
        return
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if not any(n == 'data.pkl' or n.endswith('/data.pkl')
                       for n in names):
                raise CheckpointReadError(
                    f'{filename!r} is a zip archive but not a PyTorch '
                    f'checkpoint (no data.pkl; it holds {names[:3]}). Give '
                    'the .pth file written by the training run.')
            for info in archive.infolist():
                if info.CRC == 0 and info.file_size:
                    continue  # torch.save without CRC-32 (set_crc32_options)
                with archive.open(info) as member:
                    while member.read(_CHUNK):
                        pass
    except zipfile.BadZipFile as error:
        raise CheckpointReadError(
            f'Checkpoint file {filename!r} is corrupt ({error}): it was '
            'damaged after torch.save wrote it (an incomplete copy or '
            'download, a disk error). Copy or write it again.') from None


_UNSAFE_PATTERNS = (
    r'GLOBAL (\S+) was not an allowed global',
    r'unsupported GLOBAL (\S+) whose module',
    r'Unsupported call (getattr\(.*?\)): only',
    r'reduce for unrecognized function (.*)',
    r'(?:build|create new object for).* but got (.*)',
)


def _offending(path: str, message: str) -> Optional[List[str]]:
    """The globals a refused ``weights_only`` load needed, or None when the
    error is no allow-list refusal (a damaged pickle)."""
    for pattern in _UNSAFE_PATTERNS:
        match = re.search(pattern, message)
        if match is None:
            continue
        found = [match.group(1).strip()]
        if zipfile.is_zipfile(path):
            with _allow_listed():
                found += sorted(
                    torch.serialization.get_unsafe_globals_in_checkpoint(path))
        return list(dict.fromkeys(found))
    return None


def _safe_load(path: str, filename: str, map_location: Any) -> Any:
    try:
        with _allow_listed():
            return torch.load(
                path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        offending = _offending(path, str(error))
        if offending is None:
            raise CheckpointReadError(
                f'Checkpoint file {filename!r} could not be read: '
                f'{_inner_message(error)}') from None
        raise UnsafeCheckpointError(
            f'Refusing to load checkpoint {filename!r}: it needs '
            f'{", ".join(offending)}, which is not among what mmengine '
            f'checkpoints hold ({SAFE_GLOBALS_DOC}); unpickling it could '
            f'run code. {TRUST_HINT}') from None
    except (EOFError, RuntimeError) as error:
        raise CheckpointReadError(
            f'Checkpoint file {filename!r} could not be read: '
            f'{type(error).__name__}: {error}') from None


def _inner_message(error: Exception) -> str:
    """torch's reason without its generic advice."""
    text = str(error)
    match = re.search(r'WeightsUnpickler error: \s*(.*)', text)
    return (match.group(1) if match else text).splitlines()[0].strip()


def load_from_local(
        filename: str,
        map_location: Optional[Union[str, torch.device,
                                     Callable]] = None) -> Any:
    """mmengine's ``load_from_local``, safe: same arguments, ``~`` expansion
    and ``map_location`` semantics; ``weights_only=True`` with
    :func:`safe_checkpoint_globals` unless inside
    :func:`trusted_checkpoints`.

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
    _check_file(path, filename)
    if not checkpoints_trusted():
        return _safe_load(path, filename, map_location)
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except (pickle.UnpicklingError, EOFError) as error:
        raise CheckpointReadError(
            f'Checkpoint file {filename!r} could not be read: '
            f'{type(error).__name__}: {error}') from None


def install_local_checkpoint_loader() -> None:
    """Register :func:`load_from_local` for local paths (idempotent)."""
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)


install_local_checkpoint_loader()
