"""What every DisAlign head does to build its calibration from a config.

The classification, segmentation and detection heads each fill their own
sizes (number of classes, feature channels, ...) into the calibration
config; resolving the config's type and filling only the arguments the
calibration takes is the same for all of them and lives here.
"""
import inspect
from typing import Any, Dict, Optional

from mmengine.registry import MODELS, Registry

from .calibration import BaseCalibration

__all__ = ['calibration_class', 'fill_calibration_cfg']


def calibration_class(cfg: Any, registry: Optional[Registry] = None) -> type:
    """The :class:`BaseCalibration` subclass a calibration config builds.

    Args:
        cfg (dict): Calibration config with a ``type`` (a registered name
            or a class).
        registry (Registry, optional): Where a type name is looked up: the
            head's registry (``mmpretrain``, ``mmseg`` or ``mmdet``
            ``MODELS``, children of mmengine's root registry that holds the
            calibrations). Defaults to mmengine's root ``MODELS``.

    Returns:
        type: The calibration class.

    Raises:
        TypeError: ``cfg`` is not a dict with a ``type``, or its type is
            not a ``BaseCalibration``.
        KeyError: The type name is not registered.
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

    Each ``values`` entry is set when ``calib_cls.__init__`` takes that
    argument (the adaptive :class:`DisAlignCalibration` takes
    ``in_channels``, the post-hoc special cases do not). A value the config
    already gives must agree.

    Args:
        cfg (dict): The calibration config (changed in place).
        calib_cls (type): Its class (:func:`calibration_class`).
        values (dict): Argument name -> the head's value.
        head (str): The head, for error messages (e.g. 'decode head').
        fields (dict, optional): Argument name -> the head attribute the
            value comes from, for error messages. Defaults to None.

    Returns:
        dict: ``cfg``.

    Raises:
        ValueError: The config gives another value than the head's.
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
