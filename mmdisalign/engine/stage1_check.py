"""Check that the stage-1 weights really reached the frozen part of a model.

mmengine loads ``load_from`` non-strictly: missing keys, unexpected keys and
shape mismatches are only logged. A stage-2 run started from the wrong
checkpoint (another model, another number of classes, a typo that pointed to
an unrelated file) would therefore calibrate a randomly initialised network
without complaint. :func:`check_stage1_weights` turns that into an error.
"""
import re
from typing import (Any, Dict, Iterable, List, Mapping, Optional, Pattern,
                    Sequence, Tuple)

__all__ = ['checkpoint_shapes', 'check_stage1_weights', 'model_key']

Shape = Optional[Tuple[int, ...]]

#: How many offending names an error message lists.
MAX_LISTED = 10

#: What ``Runner.load_checkpoint`` strips from every key by default.
_MODULE_PREFIX = re.compile(r'^module\.')


def model_key(key: str) -> str:
    """The model parameter name of a checkpoint key (``module.`` removed,
    as the default ``revise_keys`` of ``Runner.load_checkpoint`` does)."""
    return _MODULE_PREFIX.sub('', str(key))


def checkpoint_shapes(checkpoint: Mapping[str, Any]) -> Dict[str, Shape]:
    """Collect the key -> shape table of a loaded checkpoint.

    Uses ``checkpoint['state_dict']`` when present, else the checkpoint
    itself (a bare state dict), as mmengine does. A leading ``'module.'`` is
    stripped from every key, like the default ``revise_keys`` of
    ``Runner.load_checkpoint``. Values without a ``shape`` map to None.

    Args:
        checkpoint (Mapping): The loaded checkpoint.

    Returns:
        dict[str, tuple | None]: Shape of every entry, by model key.
    """
    if not isinstance(checkpoint, Mapping):
        raise TypeError('A checkpoint must be a dict (or a state dict), but '
                        f'got {type(checkpoint).__name__}')
    state_dict = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state_dict, Mapping):
        raise TypeError("checkpoint['state_dict'] must be a dict, but got "
                        f'{type(state_dict).__name__}')
    shapes = {}
    for key, value in state_dict.items():
        shape = getattr(value, 'shape', None)
        shapes[model_key(key)] = None if shape is None else tuple(shape)
    return shapes


def _listed(names: Sequence[str]) -> str:
    """Format at most :data:`MAX_LISTED` names for an error message."""
    shown = ', '.join(names[:MAX_LISTED])
    more = len(names) - MAX_LISTED
    return shown + (f', ... ({more} more)' if more > 0 else '')


def check_stage1_weights(
    required: Mapping[str, Tuple[int, ...]],
    loaded: Mapping[str, Shape],
    source: str,
    allow_missing: Iterable[Pattern] = ()) -> None:
    """Raise if a required tensor is absent from, or differs in, a checkpoint.

    Args:
        required (Mapping[str, tuple]): Shape of every tensor that must come
            from the checkpoint (frozen parameters and the running statistics
            of frozen norm layers), by model key.
        loaded (Mapping[str, tuple | None]): Output of
            :func:`checkpoint_shapes` for the checkpoint that was loaded.
        source (str): Where the checkpoint came from, for the message.
        allow_missing (Iterable[re.Pattern]): Keys matching any of these
            (``re.match``) may be absent; if present, their shape is still
            checked. Defaults to ().

    Raises:
        ValueError: If any required key is missing or has another shape.
    """
    allow_missing = list(allow_missing)
    missing: List[str] = []
    mismatched: List[str] = []
    for key, shape in required.items():
        if key not in loaded:
            if not any(p.match(key) for p in allow_missing):
                missing.append(key)
        elif loaded[key] != tuple(shape):
            mismatched.append(f'{key} (model {tuple(shape)}, checkpoint '
                              f'{loaded[key]})')
    if not missing and not mismatched:
        return
    lines = [
        f'The stage-1 checkpoint does not fit the frozen part of the model: '
        f'{len(missing)} of {len(required)} frozen tensors are missing from '
        f'it and {len(mismatched)} have another shape. The frozen part would '
        'keep its random initialisation, so stage 2 stops here.',
        f'Checkpoint: {source} ({len(loaded)} tensors).'
    ]
    if missing:
        lines.append(f'Missing: {_listed(missing)}.')
    if mismatched:
        lines.append(f'Shape mismatch: {_listed(mismatched)}.')
    lines.append('Load the checkpoint of the stage-1 run of this very model, '
                 'or list keys that may legitimately be absent in '
                 '`allow_missing` of DisAlignFreezeHook.')
    raise ValueError('\n'.join(lines))
