"""What every DisAlign head does to build its calibration from a config:
resolve the type, then fill in the head's sizes the calibration takes."""
import inspect
from typing import Any, Dict, Optional

from mmengine.registry import MODELS, Registry

from .calibration import BaseCalibration

__all__ = ['calibration_class', 'fill_calibration_cfg']


def calibration_class(cfg: dict, registry: Optional[Registry] = None) -> type:
    """The :class:`BaseCalibration` subclass a calibration config builds.

    Args:
        cfg (dict): Calibration config; its ``type`` is a registered name
            or a class.
        registry (Registry, optional): Where a name is looked up (the
            head's ``MODELS``, a child of mmengine's root registry).
            Defaults to mmengine's root ``MODELS``.

    Returns:
        type: The calibration class.
    """
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError('calibration must be a config dict with a "type" '
                        f'key, but got {cfg!r}')
    kind = cfg['type']
    if isinstance(kind, str):
        kind = (registry or MODELS).get(kind)
        if kind is None:
            raise KeyError(
                f'calibration type {cfg["type"]!r} is not registered; '
                'import mmdisalign (custom_imports) first')
    if not (inspect.isclass(kind) and issubclass(kind, BaseCalibration)):
        raise TypeError(f'calibration type {cfg["type"]!r} is not a '
                        'mmdisalign BaseCalibration')
    return kind


def fill_calibration_cfg(cfg: dict,
                         calib_cls: type,
                         values: Dict[str, Any],
                         head: str,
                         fields: Optional[Dict[str, str]] = None) -> dict:
    """Fill a head's sizes into a calibration config, in place.

    A ``values`` entry is set only when ``calib_cls`` takes that argument
    (``in_channels`` for :class:`DisAlignCalibration`, not for the post-hoc
    cases); a value the config already gives must agree.

    Args:
        cfg (dict): The calibration config.
        calib_cls (type): Its class (:func:`calibration_class`).
        values (dict): Argument name -> the head's value.
        head (str): The head, for messages (e.g. 'decode head').
        fields (dict, optional): Argument name -> the head attribute it
            comes from, for messages. Defaults to None.

    Returns:
        dict: ``cfg``.
    """
    params = inspect.signature(calib_cls.__init__).parameters
    for key, value in values.items():
        if key not in params:
            continue
        if key in cfg and cfg[key] != value:
            field = (fields or {}).get(key)
            source = f', from the head\'s {field}' if field else ''
            raise ValueError(
                f'calibration {key}={cfg[key]!r} does not match the {head} '
                f'({key}={value!r}{source})')
        cfg[key] = value
    return cfg
