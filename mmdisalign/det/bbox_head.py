"""DisAlign box heads for mmdet's two-stage detectors: a mixin that
calibrates the output of ``fc_cls`` in any ``ConvFCBBoxHead`` subclass."""
from typing import Optional, Tuple, Union

import torch.nn as nn
from mmdet.models.roi_heads.bbox_heads import (Shared2FCBBoxHead,
                                               Shared4Conv1FCBBoxHead)
from mmdet.registry import MODELS
from torch import Tensor

from mmdisalign.models.calibration import BaseCalibration
from mmdisalign.models.calibration_builder import build_calibration
from mmdisalign.models.losses import GRWLossBase

__all__ = [
    'DisAlignConvFCBBoxHeadMixin', 'DisAlignShared2FCBBoxHead',
    'DisAlignShared4Conv1FCBBoxHead'
]

_FIX = ('Put DisAlignConvFCBBoxHeadMixin on a box head whose forward '
        'computes the class logits as self.fc_cls(x_cls), as every mmdet '
        'ConvFCBBoxHead does, or use the upstream head for a head without '
        'class logits.')


class DisAlignConvFCBBoxHeadMixin:
    """Adds a DisAlign calibration to any mmdet ``ConvFCBBoxHead``.

    Put it FIRST among the bases:
    ``class DisAlignXBBoxHead(DisAlignConvFCBBoxHeadMixin, XBBoxHead): pass``.
    The class logits become ``calibration(fc_cls(x), x)``, ``x`` being the
    input of ``fc_cls`` (the cls branch feature after the shared and the
    cls-specific convs / FCs); mmdet puts the background logit last, so the
    calibration gets ``num_classes`` and ``uncalibrated_columns=(-1,)`` and
    passes the background through unchanged. The calibrated logits feed the
    loss and the softmax of ``predict_by_feat``; each Cascade stage is its
    own head with its own calibration. Every upstream parameter name is
    kept (a stage-1 checkpoint loads without renaming); the one new
    submodule is ``calibration``.

    How it attaches: a forward hook on ``fc_cls``, registered when the head
    is built, returns the calibrated logits. Upstream ``forward`` runs
    untouched, so the mixin copies none of it and serves ``Shared2FC``,
    ``Shared4Conv1FC``, ``ConvFCBBoxHead`` with any convs / FCs per branch
    and users' subclasses alike. The hook is a bound method of the head and
    reads ``self.calibration`` at call time: ``copy.deepcopy`` and pickling
    re-bind it to the copy, ``state_dict`` is unaffected, DDP runs it in
    the wrapped forward and ``torch.compile`` (``fullgraph=True`` too)
    traces through it (tests/test_det/test_bbox_head*.py). Overriding
    ``forward`` instead would need the input of ``fc_cls``, which only the
    upstream ``forward`` computes (hence a copy of it), and registering the
    hook per call breaks the compiled graph. Consequence:
    ``head.fc_cls(x)`` returns calibrated logits wherever it is called; a
    hook registered on ``fc_cls`` with ``prepend=True`` sees the raw ones.

    Args:
        calibration (dict | BaseCalibration, optional): Config (or module)
            of any ``BaseCalibration``; ``num_classes``,
            ``uncalibrated_columns=(-1,)`` and, if the calibration takes
            it, ``in_channels`` (the input size of ``fc_cls``) are filled
            in. None gives the upstream head. Defaults to
            ``dict(type='DisAlignCalibration')``.
        *args, **kwargs: Arguments of the upstream head.
    """

    def __init__(self,
                 *args,
                 calibration: Optional[Union[dict, nn.Module]] = dict(
                     type='DisAlignCalibration'),
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        classifier = self._classifier_layer()
        self._check_loss_cls()
        self.calibration = None
        if calibration is not None:
            self.calibration = self._build_calibration(calibration, classifier)
            classifier.register_forward_hook(self._calibrate_class_logits)

    def _classifier_layer(self) -> nn.Module:
        """``fc_cls``, with an error naming the head and the fix."""
        name = type(self).__name__
        if not getattr(self, 'with_cls', False):
            raise ValueError(
                f'{name} calibrates the class logits and needs with_cls=True '
                '(it was built with with_cls=False, so it has no classifier '
                'layer fc_cls); build the upstream head for a '
                'regression-only box head.')
        layer = getattr(self, 'fc_cls', None)
        if not isinstance(layer, nn.Module):
            raise ValueError(
                f'{name} has no classifier layer fc_cls (found '
                f'{type(layer).__name__}): DisAlignConvFCBBoxHeadMixin '
                'calibrates the output of self.fc_cls. ' + _FIX)
        return layer

    def _check_loss_cls(self) -> None:
        """The loss must score ``num_classes + 1`` softmax columns and a
        loss with class frequencies (GRW) must fit the head."""
        loss = self.loss_cls
        name, loss_name = type(self).__name__, type(loss).__name__
        if getattr(self, 'custom_cls_channels', False):
            raise ValueError(
                f'{name}: loss_cls {loss_name} asks for its own classifier '
                f'columns ({self.loss_cls.get_cls_channels(self.num_classes)}'
                f' instead of num_classes + 1 = {self.num_classes + 1}), but '
                'the calibration passes exactly one background column, the '
                'last, through unchanged. Use CrossEntropyLoss or '
                'GRWCrossEntropyLoss(with_background=True) in a DisAlign '
                'box head.')
        loss_classes = getattr(loss, 'num_classes', None)
        if loss_classes is None or not hasattr(loss, 'class_weight'):
            return  # no class frequencies
        if getattr(loss, 'use_sigmoid', False):
            raise ValueError(
                f'{name}: loss_cls {loss_name} is a sigmoid loss with class '
                'frequencies (for dense one-stage heads), but a box head '
                f'scores num_classes + 1 = {self.num_classes + 1} softmax '
                'columns, background last. Use GRWCrossEntropyLoss with '
                'with_background=True.')
        if not isinstance(loss, GRWLossBase):
            return
        if not loss.with_background:
            raise ValueError(
                f'loss_cls {loss_name} must be built with '
                f'with_background=True in the mmdet box head {name}: the '
                f'head scores num_classes + 1 = {self.num_classes + 1} '
                'columns, background last.')
        loss.check_num_classes(
            self.num_classes,
            name,
            tool='tools/analysis_tools/lvis_class_freq.py',
            background=True)

    def _build_calibration(self, cfg: Union[dict, nn.Module],
                           classifier: nn.Module) -> BaseCalibration:
        name = type(self).__name__
        in_channels = getattr(classifier, 'in_features', self.cls_last_dim)
        module = build_calibration(
            cfg,
            MODELS,
            f'box head {name}',
            dict(in_channels=in_channels),
            fields=dict(in_channels='fc_cls input size'),
            defaults=dict(
                num_classes=self.num_classes, uncalibrated_columns=(-1, )))
        if module.num_logits != self.num_classes + 1 or (
                module.uncalibrated_columns != (self.num_classes, )):
            fix = ('Leave num_classes and uncalibrated_columns out of the '
                   'calibration config; the head fills them in.')
            if isinstance(cfg, nn.Module):
                fix = (f'Build the calibration module with num_classes='
                       f'{self.num_classes} and uncalibrated_columns=(-1,), '
                       'or pass a config dict and let the head fill them '
                       'in.')
            raise ValueError(
                f'The calibration of {name} must calibrate the '
                f'{self.num_classes} foreground logits and pass the '
                f'background logit (column {self.num_classes}, mmdet puts it '
                f'last) through unchanged, but it has num_classes='
                f'{module.num_classes} and uncalibrated_columns='
                f'{module.uncalibrated_columns} for {module.num_logits} '
                f'logit columns. {fix}')
        width = getattr(module, 'in_channels', in_channels)
        if width != in_channels:
            raise ValueError(
                f'The calibration module of {name} takes {width}-d features '
                f'but fc_cls, whose input is the confidence feature, takes '
                f'{in_channels}; build it with in_channels={in_channels} or '
                'pass a config dict and let the head fill it in.')
        return module

    def _calibrate_class_logits(self, layer: nn.Module, args: Tuple,
                                logits: Tensor) -> Optional[Tensor]:
        """Forward hook of ``fc_cls``: its output calibrated with its input
        (``args[0]``, the cls branch feature) as the confidence feature."""
        if self.calibration is None:
            return None
        return self.calibration(
            logits, args[0], classifier_weight=getattr(layer, 'weight', None))


@MODELS.register_module()
class DisAlignShared2FCBBoxHead(DisAlignConvFCBBoxHeadMixin,
                                Shared2FCBBoxHead):
    """``Shared2FCBBoxHead`` with a DisAlign calibration of its class logits;
    the confidence feature is the output of the two shared FCs (what
    ``fc_cls`` sees). See :class:`DisAlignConvFCBBoxHeadMixin`."""


@MODELS.register_module()
class DisAlignShared4Conv1FCBBoxHead(DisAlignConvFCBBoxHeadMixin,
                                     Shared4Conv1FCBBoxHead):
    """``Shared4Conv1FCBBoxHead`` (4 shared 3x3 convs with the head's
    ``norm_cfg``, e.g. GN, then one shared FC) with a DisAlign calibration
    of its class logits; the confidence feature is the output of the shared
    FC (what ``fc_cls`` sees). See :class:`DisAlignConvFCBBoxHeadMixin`."""
