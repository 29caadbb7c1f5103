"""DisAlign on mmpretrain classification heads: one mixin that calibrates
the output of the head's classifier layer with that layer's input, and the
shipped heads built from it (see docs/cls.md, docs/custom_heads.md)."""
from typing import Tuple, Union

import torch
import torch.nn as nn
from mmpretrain.models.heads import (LinearClsHead, MultiLabelClsHead,
                                     StackedLinearClsHead,
                                     VisionTransformerClsHead)
from mmpretrain.registry import MODELS

from mmdisalign.models.calibration_builder import build_calibration
from mmdisalign.models.losses import GRWCrossEntropyLoss

__all__ = [
    'DisAlignClsHeadMixin', 'DisAlignLinearClsHead',
    'DisAlignStackedLinearClsHead', 'DisAlignVisionTransformerClsHead'
]


def _child(module: nn.Module, name: str) -> nn.Module:
    """``module.<name>``; an integer picks an item of a list / sequence."""
    if isinstance(module, (nn.ModuleList, nn.Sequential)):
        try:
            return module[int(name)]
        except ValueError:
            pass  # a named child of a Sequential
    return getattr(module, name)


class DisAlignClsHeadMixin:
    """Adds a calibration to an mmpretrain classification head.

    Put it FIRST among the bases. The forward is ``x = pre_logits(feats)``,
    ``z = classifier(x)``, ``calibration(z, x, classifier_weight=
    classifier.weight)``, where ``classifier`` is the layer named by
    :attr:`classifier_layer`; every upstream parameter name is kept, so a
    stage-1 checkpoint of the upstream head loads without renaming (only
    ``calibration.*`` is missing). A head whose logits are not one layer of
    ``pre_logits`` overrides :meth:`classify`. The calibration config gets
    ``num_classes`` (the head's) and, where it takes it, ``in_channels``
    (the classifier layer's input width).

    Args:
        calibration (dict | BaseCalibration): Calibration config (or
            module). Defaults to ``dict(type='DisAlignCalibration',
            init_mode='reference_cls')``, the reference classification head
            (about ``2z`` at init; ``init_mode='identity'`` starts as the
            upstream head).
        *args, **kwargs: Arguments of the upstream head.
    """

    #: Dotted name of the layer that maps ``pre_logits`` to the class
    #: logits (``'fc'``, ``'layers.head'``; an integer picks an item of a
    #: ``ModuleList`` / ``Sequential``, ``'layers.-1.fc'``).
    classifier_layer: str = 'fc'

    def __init__(self,
                 *args,
                 calibration: Union[dict, nn.Module] = dict(
                     type='DisAlignCalibration', init_mode='reference_cls'),
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        weight = self._check_classifier()
        name = type(self).__name__
        self.calibration = build_calibration(
            calibration,
            MODELS,
            f'classification head {name}',
            dict(num_classes=self.num_classes, in_channels=weight.shape[1]),
            fields=dict(
                num_classes='num_classes',
                in_channels=f'{self.classifier_layer}.weight input width'))
        if self.calibration.num_logits != self.num_classes:
            raise ValueError(
                f'{name}: the calibration takes '
                f'{self.calibration.num_logits} logit columns but the head '
                f'predicts num_classes={self.num_classes}; give the '
                'calibration as a config dict without num_classes (the '
                'head fills it in)')
        self._check_loss()

    def _check_loss(self) -> None:
        """Fail early on a softmax GRW loss on a multi-label head or with
        the wrong number of classes."""
        loss = getattr(self, 'loss_module', None)
        if not isinstance(loss, GRWCrossEntropyLoss):
            return
        if isinstance(self, MultiLabelClsHead):
            # The multi-hot targets would pass as one soft label.
            raise ValueError(
                f'{type(self).__name__} is a multi-label head (a '
                'MultiLabelClsHead: one sigmoid score per class, multi-hot '
                f'targets), but its loss {type(loss).__name__} is the '
                'softmax GRW loss, which would read the multi-hot targets as '
                'one soft label. Use a sigmoid loss, e.g. '
                "loss=dict(type='FocalLoss') or loss=dict("
                "type='CrossEntropyLoss', use_sigmoid=True) (BCE), or a "
                'single-label head (e.g. DisAlignLinearClsHead) for '
                'single-label data')
        loss.check_num_classes(
            self.num_classes,
            type(self).__name__,
            tool='tools/analysis_tools/class_freq_cls.py',
            loss_key='loss')

    def _check_classifier(self) -> torch.Tensor:
        """The classifier weight ``(num_classes, D)``; errors name the head
        and the fix."""
        name = type(self).__name__
        fix = (f'set `classifier_layer` on {name} to the dotted name of the '
               'layer that maps pre_logits to the class logits, or override '
               '`classify` (docs/custom_heads.md)')
        try:
            layer = self.get_classifier()
        except (AttributeError, IndexError) as error:
            raise AttributeError(
                f'{name} has no classifier layer {self.classifier_layer!r} '
                f'({error}); {fix}') from None
        weight = getattr(layer, 'weight', None)
        if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
            raise TypeError(
                f'{name}: the classifier layer {self.classifier_layer!r} is '
                f'a {type(layer).__name__} without a (num_classes, D) '
                f'weight; {fix}')
        if weight.shape[0] != self.num_classes:
            raise ValueError(
                f'{name}: the classifier layer {self.classifier_layer!r} '
                f'has {weight.shape[0]} outputs but the head predicts '
                f'num_classes={self.num_classes}; {fix}')
        return weight

    def get_classifier(self) -> nn.Module:
        """The layer named by :attr:`classifier_layer`."""
        module = self
        for part in self.classifier_layer.split('.'):
            module = _child(module, part)
        return module

    def classify(
            self,
            pre_logits: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Uncalibrated logits and the confidence feature.

        Args:
            pre_logits (Tensor): The output of :meth:`pre_logits`.

        Returns:
            tuple[Tensor, Tensor]: ``classifier(pre_logits)`` and
            ``pre_logits`` (the classifier input).
        """
        return self.get_classifier()(pre_logits), pre_logits

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """Calibrated class scores ``(N, num_classes)``."""
        logits, feature = self.classify(self.pre_logits(feats))
        return self.calibration(
            logits, feature, classifier_weight=self.get_classifier().weight)


@MODELS.register_module()
class DisAlignLinearClsHead(DisAlignClsHeadMixin, LinearClsHead):
    """:class:`LinearClsHead` + calibration:
    ``calibration(fc(x), x, classifier_weight=fc.weight)``.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Channels of the input feature.
        calibration (dict): See :class:`DisAlignClsHeadMixin`.
        **kwargs: Other arguments of :class:`LinearClsHead`.
    """


@MODELS.register_module()
class DisAlignStackedLinearClsHead(DisAlignClsHeadMixin, StackedLinearClsHead):
    """:class:`StackedLinearClsHead` + calibration of its last layer
    (``layers[-1].fc``), the confidence computed from the output of the
    hidden layers (``pre_logits``).

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Channels of the input feature.
        mid_channels (Sequence[int]): Widths of the hidden layers.
        calibration (dict): See :class:`DisAlignClsHeadMixin`.
        **kwargs: Other arguments of :class:`StackedLinearClsHead`.
    """

    classifier_layer = 'layers.-1.fc'


@MODELS.register_module()
class DisAlignVisionTransformerClsHead(DisAlignClsHeadMixin,
                                       VisionTransformerClsHead):
    """:class:`VisionTransformerClsHead` + calibration of ``layers.head``,
    the confidence computed from its input (the class token, or with
    ``hidden_dim`` the output of the hidden layer and its activation).

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Channels of the class token.
        hidden_dim (int, optional): Width of the hidden layer.
        calibration (dict): See :class:`DisAlignClsHeadMixin`.
        **kwargs: Other arguments of :class:`VisionTransformerClsHead`.
    """

    classifier_layer = 'layers.head'
