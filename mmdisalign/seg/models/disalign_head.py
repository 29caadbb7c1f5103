"""DisAlign decode heads for mmsegmentation: a mixin overriding
``BaseDecodeHead.cls_seg``, so any decode head that calls it gets a DisAlign
variant (see docs/seg.md)."""
from typing import Optional, Union

import torch.nn as nn
from mmseg.models.decode_heads import (DepthwiseSeparableASPPHead, FCNHead,
                                       SegformerHead, UPerHead)
from mmseg.registry import MODELS
from torch import Tensor

from mmdisalign.models.calibration import BaseCalibration
from mmdisalign.models.calibration_builder import build_calibration
from mmdisalign.models.losses import GRWCrossEntropyLoss

__all__ = [
    'DisAlignDecodeHeadMixin', 'DisAlignFCNHead',
    'DisAlignDepthwiseSeparableASPPHead', 'DisAlignUPerHead',
    'DisAlignSegformerHead', 'CONFIDENCE_MODES'
]

#: ``'linear'``: sigma = sigmoid(conv1x1(x) + b), the paper's form.
#: ``'reference'``: sigma = sigmoid(act(norm(conv1x1(x)))) with the head's
#: own ``norm_cfg`` and ``act_cfg`` (the reference ADE20K code: conv without
#: bias, SyncBN, ReLU; the ReLU makes sigma >= 0.5).
CONFIDENCE_MODES = ('linear', 'reference')


class DisAlignDecodeHeadMixin:
    """Adds a per-pixel DisAlign calibration to an mmseg decode head.

    Put it FIRST among the bases. ``cls_seg(f)`` returns
    ``calibration(conv_seg(dropout(f)), f)``. The calibration config gets,
    where it takes them, ``num_classes`` (``out_channels``), ``in_channels``
    (``channels``), ``dense=True`` and, with ``confidence='reference'``,
    the head's ``norm_cfg`` / ``act_cfg`` as ``confidence_norm_cfg`` /
    ``confidence_act_cfg`` (explicit keys win). Upstream parameter names
    are kept: a stage-1 checkpoint loads without renaming.

    Args:
        calibration (dict | BaseCalibration, optional): Calibration config
            (or module). Defaults to ``dict(type='DisAlignCalibration')``.
        confidence (str): One of :data:`CONFIDENCE_MODES`; only used by
            :class:`DisAlignCalibration`. Defaults to ``'linear'``.
        *args, **kwargs: Arguments of the upstream head.
    """

    def __init__(self,
                 *args,
                 calibration: Optional[Union[dict, nn.Module]] = None,
                 confidence: str = 'linear',
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._check_classifier()
        if confidence not in CONFIDENCE_MODES:
            raise ValueError(f'confidence must be one of {CONFIDENCE_MODES}, '
                             f'but got {confidence!r}')
        self.confidence_mode = confidence
        self.calibration = self._build_calibration(calibration, confidence)
        self._check_losses()

    def _check_classifier(self) -> None:
        """The mixin calibrates ``conv_seg``: refuse a head without one."""
        if not isinstance(getattr(self, 'conv_seg', None), nn.Conv2d):
            name = type(self).__name__
            raise TypeError(
                f'{name}: DisAlignDecodeHeadMixin calibrates the output of '
                '`conv_seg` in `cls_seg`, but this head has no `conv_seg` '
                'Conv2d (it predicts through its own layers); override '
                '`cls_seg` to calibrate its classifier layer, e.g. '
                '`self.calibration(logits, feat, classifier_weight=...)` '
                '(docs/custom_heads.md)')

    def _build_calibration(self, cfg: Optional[Union[dict, nn.Module]],
                           confidence: str) -> BaseCalibration:
        if cfg is None:
            cfg = dict(type='DisAlignCalibration')
        defaults = None
        if confidence == 'reference':
            defaults = dict(
                confidence_norm_cfg=self.norm_cfg,
                confidence_act_cfg=self.act_cfg)
        module = build_calibration(
            cfg,
            MODELS,
            f'decode head {type(self).__name__}',
            dict(
                num_classes=self.out_channels,
                in_channels=self.channels,
                dense=True),
            fields=dict(
                num_classes='out_channels',
                in_channels='channels',
                dense='dense per-pixel output'),
            defaults=defaults)
        if module.num_logits != self.out_channels:
            raise ValueError(
                f'{type(self).__name__}: the calibration takes '
                f'{module.num_logits} logit columns but the decode head '
                f'predicts out_channels={self.out_channels}; give the '
                'calibration as a config dict without num_classes (the '
                'head fills it in)')
        return module

    def _check_losses(self) -> None:
        """Fail early on a GRW loss with the wrong number of classes."""
        losses = self.loss_decode
        if not isinstance(losses, nn.ModuleList):
            losses = [losses]
        for loss in losses:
            if isinstance(loss, GRWCrossEntropyLoss):
                loss.check_num_classes(
                    self.out_channels,
                    type(self).__name__,
                    tool='tools/analysis_tools/seg_pixel_freq.py',
                    loss_key='loss_decode',
                    field='out_channels')

    def cls_seg(self, feat: Tensor) -> Tensor:
        """Calibrated scores ``(N, out_channels, H, W)`` of ``feat``."""
        logits = super().cls_seg(feat)
        return self.calibration(
            logits, feat, classifier_weight=self.conv_seg.weight)


@MODELS.register_module()
class DisAlignFCNHead(DisAlignDecodeHeadMixin, FCNHead):
    """``FCNHead`` with a per-pixel DisAlign calibration of the input of
    ``conv_seg`` (after ``convs`` and, with ``concat_input``, ``conv_cat``).
    """


@MODELS.register_module()
class DisAlignDepthwiseSeparableASPPHead(DisAlignDecodeHeadMixin,
                                         DepthwiseSeparableASPPHead):
    """DeepLabV3+ head with a per-pixel DisAlign calibration of the input
    of ``conv_seg`` (the output of ``sep_bottleneck``)."""


@MODELS.register_module()
class DisAlignUPerHead(DisAlignDecodeHeadMixin, UPerHead):
    """UPerNet head with a per-pixel DisAlign calibration of the input of
    ``conv_seg`` (the output of ``fpn_bottleneck``)."""


@MODELS.register_module()
class DisAlignSegformerHead(DisAlignDecodeHeadMixin, SegformerHead):
    """SegFormer's all-MLP head with a per-pixel DisAlign calibration of the
    input of ``conv_seg`` (the output of ``fusion_conv``)."""
