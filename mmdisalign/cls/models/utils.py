"""Building the calibration sub-module of the classification heads."""
import copy
import inspect

from mmpretrain.registry import MODELS
from torch import nn

__all__ = ['build_calibration']


def build_calibration(cfg: dict, num_classes: int,
                      in_channels: int) -> nn.Module:
    """Build a calibration module for a classification head.

    ``num_classes`` is filled in, and ``in_channels`` too when the
    calibration takes it (the adaptive DisAlign calibration does, the
    post-hoc baselines do not). Values already in ``cfg`` must agree.

    Args:
        cfg (dict): Calibration config, e.g.
            ``dict(type='DisAlignCalibration', init_mode='reference_cls')``.
        num_classes (int): Classes of the head.
        in_channels (int): Channels of the feature that feeds the head.

    Returns:
        nn.Module: The calibration module.
    """
    if isinstance(cfg, nn.Module):
        return cfg
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError('calibration must be a config dict with a "type" '
                        f'key, but got {cfg!r}')
    cfg = copy.deepcopy(dict(cfg))
    calib_cls = cfg['type']
    if isinstance(calib_cls, str):
        calib_cls = MODELS.get(calib_cls)
        if calib_cls is None:
            raise KeyError(
                f'calibration type {cfg["type"]!r} is not registered; did '
                'you import mmdisalign (custom_imports)?')
    params = inspect.signature(calib_cls.__init__).parameters
    for key, value in (('num_classes', num_classes), ('in_channels',
                                                      in_channels)):
        if key not in params:
            continue
        if key in cfg and cfg[key] != value:
            raise ValueError(
                f'calibration {key}={cfg[key]} does not match the head\'s '
                f'{key}={value}')
        cfg[key] = value
    return MODELS.build(cfg)
