"""DisAlign for mmdet's one-stage (dense) heads: a mixin that calibrates the
output of the head's classification conv with that conv's input as the
confidence feature, per anchor and location (see docs/det.md)."""
from typing import Optional, Union

import torch.nn as nn
from mmdet.models.dense_heads import ATSSHead, FCOSHead, RetinaHead
from mmdet.registry import MODELS
from torch import Tensor

from mmdisalign.models.calibration_builder import build_calibration
from mmdisalign.models.losses import (GRWCrossEntropyLoss, GRWFocalLoss,
                                      GRWLossBase)

__all__ = [
    'DisAlignDenseHeadMixin', 'DisAlignRetinaHead', 'DisAlignFCOSHead',
    'DisAlignATSSHead'
]


def _loss_type(cfg) -> Optional[type]:
    """The class a loss config names, if it can be resolved."""
    if not isinstance(cfg, dict):
        return None
    loss_type = cfg.get('type')
    if isinstance(loss_type, str):
        loss_type = MODELS.get(loss_type)
    return loss_type if isinstance(loss_type, type) else None


class DisAlignDenseHeadMixin:
    """Adds a DisAlign calibration to an mmdet dense head.

    Put it FIRST among the bases and name the classification conv in
    ``cls_layer_name`` (e.g. ``'retina_cls'``). A forward hook on that conv
    replaces its output ``(N, A * L, H, W)`` (``A`` anchors per location,
    ``L`` = ``cls_out_channels``) by ``calibration(z, x)``: ``z`` viewed as
    ``(N, L, A, H, W)``, ``x`` the conv's input ``(N, C, H, W)``. alpha and
    beta are per class, shared over anchors, locations and FPN levels; with
    :class:`DisAlignCalibration` sigma is one map per location from ``x``.
    The calibrated logits feed the loss and the post-processing. Sigmoid
    heads (no background column) calibrate all ``L = num_classes`` columns;
    a softmax head passes its background column (last) through. Upstream
    parameter names are kept: a stage-1 checkpoint loads without renaming.

    Args:
        calibration (dict | BaseCalibration, optional): Any calibration;
            ``num_classes``, ``uncalibrated_columns``, ``dense=True`` and
            ``in_channels`` are filled in where it takes them. None gives
            the upstream head. Defaults to
            ``dict(type='DisAlignCalibration')``.
        cls_layer (str, optional): Instead of ``cls_layer_name``.
            Defaults to None.
        *args, **kwargs: Arguments of the upstream head.
    """

    #: Attribute name of the classification conv.
    cls_layer_name: Optional[str] = None

    def __init__(self,
                 *args,
                 calibration: Optional[Union[dict, nn.Module]] = dict(
                     type='DisAlignCalibration'),
                 cls_layer: Optional[str] = None,
                 **kwargs) -> None:
        self._check_loss_cfg(kwargs.get('loss_cls'))
        super().__init__(*args, **kwargs)
        name = cls_layer or self.cls_layer_name
        layer = getattr(self, name, None) if name else None
        if not isinstance(layer, nn.Conv2d):
            convs = [
                n for n, m in self.named_children()
                if isinstance(m, nn.Conv2d)
            ]
            raise ValueError(
                f'{type(self).__name__}: the classification conv '
                f'{name!r} is not an nn.Conv2d attribute of the head; its '
                f'convs are {convs}. Set cls_layer_name on the class (or '
                'cls_layer=... in the config) to the conv that outputs the '
                'class logits')
        if layer.out_channels % self.cls_out_channels:
            raise ValueError(
                f'{type(self).__name__}: {name} has {layer.out_channels} '
                f'output channels, not a multiple of cls_out_channels='
                f'{self.cls_out_channels}; it is not the classification conv')
        self._check_loss()
        self.cls_layer = name
        self.calibration = None
        if calibration is not None:
            self.calibration = self._build_calibration(calibration, layer)
            layer.register_forward_hook(self._calibrate_cls_score)

    def _check_loss_cfg(self, cfg) -> None:
        """Before the head is built: a softmax GRW loss cannot be sigmoid."""
        if _loss_type(cfg) is GRWCrossEntropyLoss and cfg.get('use_sigmoid'):
            raise ValueError(
                f'{type(self).__name__}: loss_cls GRWCrossEntropyLoss is the '
                'softmax GRW loss, but use_sigmoid=True asks for a sigmoid '
                'head (num_classes columns, no background). Use '
                "loss_cls=dict(type='GRWFocalLoss', use_sigmoid=True, "
                'class_freq=..., rho=...) for a sigmoid head')

    def _check_loss(self) -> None:
        """A GRW loss must fit the head's activation and class count."""
        loss = self.loss_cls
        name = type(self).__name__
        if isinstance(loss, GRWFocalLoss) and not self.use_sigmoid_cls:
            raise ValueError(
                f'{name}: loss_cls GRWFocalLoss is a sigmoid loss, but the '
                'head was built as a softmax head (num_classes + 1 columns): '
                'mmdet dense heads read use_sigmoid from the loss_cls '
                'config. Write loss_cls=dict(type=\'GRWFocalLoss\', '
                'use_sigmoid=True, ...)')
        if isinstance(loss, GRWCrossEntropyLoss) and not loss.with_background:
            raise ValueError(
                f'{name}: loss_cls GRWCrossEntropyLoss is the softmax GRW '
                'loss; without use_sigmoid the head scores num_classes + 1 '
                'columns, background last, so it needs '
                'with_background=True. For a sigmoid head (RetinaNet, FCOS, '
                'ATSS trained with FocalLoss use_sigmoid=True) use '
                "loss_cls=dict(type='GRWFocalLoss', use_sigmoid=True, ...)")
        if isinstance(loss, GRWLossBase):
            loss.check_num_classes(
                self.num_classes,
                name,
                tool='tools/analysis_tools/lvis_class_freq.py',
                background=not self.use_sigmoid_cls)

    def _build_calibration(self, cfg: Union[dict, nn.Module],
                           layer: nn.Conv2d) -> nn.Module:
        background = () if self.use_sigmoid_cls else (-1, )
        module = build_calibration(
            cfg,
            MODELS,
            'dense head',
            dict(in_channels=layer.in_channels, dense=True),
            fields=dict(
                in_channels=f'{self.cls_layer}.in_channels',
                dense='dense per-location output'),
            defaults=dict(
                num_classes=self.num_classes, uncalibrated_columns=background))
        expected = tuple(range(self.num_classes, self.cls_out_channels))
        if (module.num_logits != self.cls_out_channels
                or module.uncalibrated_columns != expected):
            kind = ('sigmoid: no background column' if self.use_sigmoid_cls
                    else f'softmax: background column {self.num_classes}')
            raise ValueError(
                f'The calibration of {type(self).__name__} must calibrate '
                f'the {self.num_classes} class logits of each anchor '
                f'({kind}), but it has num_classes={module.num_classes} and '
                f'uncalibrated_columns={module.uncalibrated_columns}. Leave '
                'num_classes and uncalibrated_columns out of the calibration '
                'config; the head fills them in')
        return module

    def _calibrate_cls_score(self, layer: nn.Conv2d, inputs: tuple,
                             cls_score: Tensor) -> Tensor:
        """Forward hook of the classification conv: calibrated logits."""
        num_logits = self.cls_out_channels
        weight = layer.weight
        if cls_score.size(1) == num_logits:  # one anchor per location
            return self.calibration(
                cls_score, inputs[0], classifier_weight=weight)
        n, _, h, w = cls_score.shape
        # Channel a * L + l is anchor a, class l (mmdet's layout); the
        # classifier weight of class l: its filters of every anchor.
        logits = cls_score.view(n, -1, num_logits, h, w).transpose(1, 2)
        weight = weight.detach().view(-1, num_logits, *weight.shape[1:])
        weight = weight.transpose(0, 1).flatten(1)
        calibrated = self.calibration(
            logits, inputs[0], classifier_weight=weight)
        return calibrated.transpose(1, 2).reshape(n, -1, h, w)


@MODELS.register_module()
class DisAlignRetinaHead(DisAlignDenseHeadMixin, RetinaHead):
    """``RetinaHead`` with a DisAlign calibration of ``retina_cls`` (its
    input: the last of ``cls_convs``), per anchor and location."""

    cls_layer_name = 'retina_cls'


@MODELS.register_module()
class DisAlignFCOSHead(DisAlignDenseHeadMixin, FCOSHead):
    """``FCOSHead`` with a DisAlign calibration of ``conv_cls`` (its input:
    the last of ``cls_convs``), per location."""

    cls_layer_name = 'conv_cls'


@MODELS.register_module()
class DisAlignATSSHead(DisAlignDenseHeadMixin, ATSSHead):
    """``ATSSHead`` with a DisAlign calibration of ``atss_cls`` (its input:
    the last of ``cls_convs``), per anchor and location."""

    cls_layer_name = 'atss_cls'
