"""How every DisAlign head builds its calibration from a config."""
import copy
import inspect
from typing import Any, Dict, Optional, Union

import torch.nn as nn
from mmengine.registry import Registry

from .calibration import BaseCalibration

__all__ = ['build_calibration']


def build_calibration(cfg: Union[dict, nn.Module],
                      registry: Registry,
                      head: str,
                      values: Dict[str, Any],
                      fields: Optional[Dict[str, str]] = None,
                      defaults: Optional[Dict[str, Any]] = None) -> nn.Module:
    """Build a head's calibration, filling in the head's ``values`` (a value
    the config gives must agree) and ``defaults``, each only where the
    calibration class takes it (``in_channels``: DisAlign, not post-hoc).

    Args:
        cfg (dict | nn.Module): Calibration config, its ``type`` a name of
            ``registry`` or a class; a module is returned as is.
        registry (Registry): The head's ``MODELS`` (a child of mmengine's
            root registry, where the calibrations are registered).
        head (str): The head, for messages (e.g. 'decode head').
        values (dict): Argument name -> the head's value.
        fields (dict, optional): Argument name -> the head attribute it
            comes from, for messages. Defaults to None.
        defaults (dict, optional): Argument name -> value used when the
            config has none. Defaults to None.

    Returns:
        nn.Module: The calibration.
    """
    if isinstance(cfg, nn.Module):
        return cfg
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError('calibration must be a config dict with a "type" '
                        f'key, but got {cfg!r}')
    calib_cls = cfg['type']
    if isinstance(calib_cls, str):
        calib_cls = registry.get(calib_cls)
        if calib_cls is None:
            raise KeyError(
                f'calibration type {cfg["type"]!r} is not registered; '
                'import mmdisalign (custom_imports) first')
    if not (inspect.isclass(calib_cls)
            and issubclass(calib_cls, BaseCalibration)):
        raise TypeError(f'calibration type {cfg["type"]!r} is not a '
                        'mmdisalign BaseCalibration')
    params = inspect.signature(calib_cls.__init__).parameters
    cfg = dict(copy.deepcopy(cfg), type=calib_cls)
    for key, value in (defaults or {}).items():
        if key in params:
            cfg.setdefault(key, copy.deepcopy(value))
    for key, value in values.items():
        if key not in params:
            continue
        if key in cfg and cfg[key] != value:
            field = (fields or {}).get(key)
            source = f', from the head\'s {field}' if field else ''
            raise ValueError(
                f'calibration {key}={cfg[key]!r} does not match the {head} '
                f'({key}={value!r}{source}); leave {key} out of the '
                'calibration config: the head fills it in')
        cfg[key] = value
    return registry.build(cfg)
