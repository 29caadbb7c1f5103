"""Building the calibration sub-module of the classification heads."""
import copy

from mmpretrain.registry import MODELS
from torch import nn

from mmdisalign.models.calibration_builder import (calibration_class,
                                                   fill_calibration_cfg)

__all__ = ['build_calibration']


def build_calibration(cfg: dict, num_classes: int,
                      in_channels: int) -> nn.Module:
    """Build the calibration of a classification head from ``cfg`` (or
    return a module as is), filling in ``num_classes`` and, where the
    calibration takes it, ``in_channels``; values in ``cfg`` must agree."""
    if isinstance(cfg, nn.Module):
        return cfg
    calib_cls = calibration_class(cfg, MODELS)
    cfg = copy.deepcopy(dict(cfg))
    fill_calibration_cfg(
        cfg,
        calib_cls,
        dict(num_classes=num_classes, in_channels=in_channels),
        head='classification head')
    cfg['type'] = calib_cls
    return MODELS.build(cfg)
