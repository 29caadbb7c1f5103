"""Building the calibration sub-module of the classification heads."""
import copy

from mmpretrain.registry import MODELS
from torch import nn

from mmdisalign.models.calibration_builder import (calibration_class,
                                                   fill_calibration_cfg)

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
    calib_cls = calibration_class(cfg, MODELS)
    cfg = copy.deepcopy(dict(cfg))
    fill_calibration_cfg(
        cfg,
        calib_cls,
        dict(num_classes=num_classes, in_channels=in_channels),
        head='classification head')
    cfg['type'] = calib_cls
    return MODELS.build(cfg)
