"""Check that the stage-1 weights reached the frozen part of a model:
mmengine loads ``load_from`` non-strictly (missing keys and other shapes are
only logged), so stage 2 would calibrate a random network without it."""
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Pattern, Tuple

from mmdisalign.utils.misc import listed

__all__ = ['checkpoint_shapes', 'check_stage1_weights', 'model_key']

Shape = Optional[Tuple[int, ...]]


def model_key(key: str) -> str:
    """The parameter name of a checkpoint key: ``module.`` removed, as the
    default ``revise_keys`` of ``Runner.load_checkpoint`` does."""
    return re.sub(r'^module\.', '', key)


def checkpoint_shapes(checkpoint: Mapping[str, Any]) -> Dict[str, Shape]:
    """Key -> shape of ``checkpoint['state_dict']`` (or of a bare state
    dict), by model key; None for values without a shape."""
    shapes = {}
    for key, value in checkpoint.get('state_dict', checkpoint).items():
        shape = getattr(value, 'shape', None)
        shapes[model_key(key)] = None if shape is None else tuple(shape)
    return shapes


def check_stage1_weights(
        required: Mapping[str, tuple],
        loaded: Mapping[str, Shape],
        source: str,
        allow_missing: Iterable[Pattern] = (),
) -> None:
    """Raise if a required tensor is absent from a checkpoint or differs.

    Args:
        required (Mapping[str, tuple]): Shape of every tensor that must come
            from the checkpoint, by model key.
        loaded (Mapping[str, tuple | None]): :func:`checkpoint_shapes` of
            the loaded checkpoint.
        source (str): Where the checkpoint came from, for the message.
        allow_missing (Iterable[re.Pattern]): Keys that may be absent
            (``re.match``); their shape is still checked. Defaults to ().
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
        lines.append(f'Missing: {listed(missing)}.')
    if mismatched:
        lines.append(f'Shape mismatch: {listed(mismatched)}.')
    lines.append('Load the checkpoint of the stage-1 run of this very model, '
                 'or list keys that may legitimately be absent in '
                 '`allow_missing` of DisAlignFreezeHook.')
    raise ValueError('\n'.join(lines))
