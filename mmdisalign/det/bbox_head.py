"""DisAlign box head for mmdet's two-stage detectors.

The head is mmdet's :class:`~mmdet.models.roi_heads.Shared2FCBBoxHead`
with one extra submodule, ``calibration``, applied to the classification
logits. Everything else (the two shared FCs, ``fc_cls``, ``fc_reg``, the
losses, the post-processing) is the upstream code, and the parameter names
are the upstream ones, so a stage-1 checkpoint of a model with the upstream
head loads into this head without renaming; only ``calibration.*`` is new.

The calibration formula lives in :mod:`mmdisalign.models.calibration`; this
module only says where the RoI feature and the logits are.
"""
import copy
from typing import Optional, Tuple, Union

from mmdet.models.roi_heads.bbox_heads import Shared2FCBBoxHead
from mmdet.registry import MODELS
from mmengine.config import ConfigDict
from torch import Tensor

from mmdisalign.models.calibration_builder import (calibration_class,
                                                   fill_calibration_cfg)

__all__ = ['DisAlignShared2FCBBoxHead']


@MODELS.register_module()
class DisAlignShared2FCBBoxHead(Shared2FCBBoxHead):
    """``Shared2FCBBoxHead`` whose class logits go through a calibration.

    For each RoI with flattened feature ``x`` (the post-ReLU output of the
    second shared FC, i.e. what ``fc_cls`` sees) and logits
    ``z = fc_cls(x)`` of shape ``(num_rois, num_classes + 1)``, the head
    returns ``calibration(z, x)``. mmdet puts the background logit LAST
    (column ``num_classes``); the calibration is built with
    ``uncalibrated_columns=(-1,)`` so only the ``num_classes`` foreground
    logits are calibrated and the background logit passes through
    unchanged, as in the reference implementation. The calibrated logits
    feed both the loss (GRW in stage 2) and the softmax of the
    post-processing.

    With ``calibration=dict(type='DisAlignCalibration')`` (the default)
    this is the DisAlign box predictor of the paper: identity at
    initialisation (``alpha = beta = 0``, confidence ``Linear(1024, 1)``
    with weight N(0, 0.01) and bias 0), confidence computed from the raw
    RoI feature for both the linear and the cosine classifier. The cosine
    classifier is mmdet's own ``cls_predictor_cfg=dict(type='NormedLinear',
    tempearture=20, bias=False)`` (mmdet spells it ``tempearture``).

    Works anywhere mmdet uses a ``Shared2FCBBoxHead``: the box head of
    (Mask) R-CNN and every stage of Cascade (Mask) R-CNN (each stage gets
    its own calibration; the cascade averages the calibrated logits of the
    stages before the softmax, as it does for the upstream heads).

    Args:
        calibration (dict, optional): Config of the calibration module (any
            :class:`~mmdisalign.models.calibration.BaseCalibration`).
            ``num_classes`` and ``uncalibrated_columns=(-1,)`` are filled in
            when absent, and ``in_channels`` (the ``fc_cls`` input size) if
            the calibration takes it. None gives the plain upstream head
            (useful to compare). Defaults to
            ``dict(type='DisAlignCalibration')``.
        *args, **kwargs: Arguments of ``Shared2FCBBoxHead``.
    """

    def __init__(self,
                 *args,
                 calibration: Optional[Union[dict, ConfigDict]] = dict(
                     type='DisAlignCalibration'),
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not self.with_cls:
            raise ValueError(
                f'{type(self).__name__} calibrates the class logits and '
                'needs with_cls=True')
        if self.custom_cls_channels:
            raise ValueError(
                f'{type(self).__name__} supports losses with num_classes + 1 '
                f'softmax logits (background last), but loss_cls '
                f'{type(self.loss_cls).__name__} asks for custom class '
                'channels')
        self._check_loss_classes()
        self.calibration = None
        if calibration is not None:
            self.calibration = self._build_calibration(calibration)

    def _build_calibration(self, cfg: Union[dict, ConfigDict]):
        """Build the calibration for the ``num_classes + 1`` logits."""
        calib_cls = calibration_class(cfg, MODELS)
        cfg = copy.deepcopy(dict(cfg))
        # num_classes and uncalibrated_columns are checked on the built
        # module below (with the background column explained)
        cfg.setdefault('num_classes', self.num_classes)
        cfg.setdefault('uncalibrated_columns', (-1, ))
        fill_calibration_cfg(
            cfg,
            calib_cls,
            dict(in_channels=self.cls_last_dim),
            head='box head')
        cfg['type'] = calib_cls
        module = MODELS.build(cfg)
        num_logits = self.num_classes + 1
        if module.num_logits != num_logits or module.uncalibrated_columns != (
                self.num_classes, ):
            raise ValueError(
                f'The calibration of {type(self).__name__} must calibrate the '
                f'{self.num_classes} foreground logits and pass the '
                f'background logit (column {self.num_classes}, mmdet puts it '
                f'last) through unchanged, but it has num_classes='
                f'{module.num_classes} and uncalibrated_columns='
                f'{module.uncalibrated_columns} for {module.num_logits} '
                f'logit columns. Leave num_classes and uncalibrated_columns '
                'out of the calibration config; the head fills them in.')
        return module

    def _check_loss_classes(self) -> None:
        """Check that a loss with its own class list fits the head.

        A loss that carries per-class statistics (``GRWCrossEntropyLoss``
        and the like: it has ``num_classes`` and ``with_background``
        attributes) must describe the head's foreground classes plus a
        background column.
        """
        loss = self.loss_cls
        loss_classes = getattr(loss, 'num_classes', None)
        if loss_classes is None or not hasattr(loss, 'with_background'):
            return
        source = getattr(loss, 'source', None)
        origin = f'the frequency file {source!r}' if source else 'class_freq'
        if loss_classes != self.num_classes:
            raise ValueError(
                f'loss_cls {type(loss).__name__} has {loss_classes} class '
                f'frequencies (from {origin}) but the box head predicts '
                f'num_classes={self.num_classes}: the frequency file was '
                'written for another category set. Write it from the '
                "training annotations of this model's dataset with "
                'tools/analysis_tools/lvis_class_freq.py.')
        if not loss.with_background:
            raise ValueError(
                f'loss_cls {type(loss).__name__} must be built with '
                'with_background=True in an mmdet box head: the head scores '
                f'num_classes + 1 = {self.num_classes + 1} columns, '
                'background last.')

    def forward(self, x: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        """Box classification and regression of the RoI features.

        Args:
            x (Tensor): RoI features ``(num_rois, C, H, W)``.

        Returns:
            tuple: ``cls_score`` ``(num_rois, num_classes + 1)`` (calibrated
            logits, background last) and ``bbox_pred`` (or None without
            regression).
        """
        feats = self.roi_feature(x)
        cls_score = self.fc_cls(feats)
        if self.calibration is not None:
            cls_score = self.calibration(
                cls_score, feats, classifier_weight=self.fc_cls.weight)
        bbox_pred = self.fc_reg(feats) if self.with_reg else None
        return cls_score, bbox_pred

    def roi_feature(self, x: Tensor) -> Tensor:
        """The flattened feature that feeds ``fc_cls`` and ``fc_reg``.

        ``Shared2FCBBoxHead`` has no shared convolutions and no
        branch-specific layers, so both predictors see the output of the
        two shared FCs (each followed by ReLU), after the optional average
        pooling and flattening of the RoI feature map.

        Args:
            x (Tensor): RoI features ``(num_rois, C, H, W)``.

        Returns:
            Tensor: ``(num_rois, fc_out_channels)``.
        """
        if self.with_avg_pool:
            x = self.avg_pool(x)
        x = x.flatten(1)
        for fc in self.shared_fcs:
            x = self.relu(fc(x))
        return x
