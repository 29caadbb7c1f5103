"""DisAlign box head for mmdet's two-stage detectors."""
from typing import Optional, Tuple

from mmdet.models.roi_heads.bbox_heads import Shared2FCBBoxHead
from mmdet.registry import MODELS
from torch import Tensor

from mmdisalign.models.calibration_builder import build_calibration

__all__ = ['DisAlignShared2FCBBoxHead']


@MODELS.register_module()
class DisAlignShared2FCBBoxHead(Shared2FCBBoxHead):
    """``Shared2FCBBoxHead`` whose class logits go through a calibration.

    The head returns ``calibration(fc_cls(x), x)`` where ``x`` is the input
    of ``fc_cls`` (the output of the shared FCs). mmdet puts the background
    logit last: the calibration gets ``uncalibrated_columns=(-1,)`` and
    passes it through unchanged. The calibrated logits feed the loss and
    the softmax of the post-processing. Works wherever mmdet uses a
    ``Shared2FCBBoxHead`` (each Cascade stage gets its own calibration).

    Args:
        calibration (dict, optional): Config of any ``BaseCalibration``;
            ``num_classes``, ``uncalibrated_columns=(-1,)`` and, if the
            calibration takes it, ``in_channels`` are filled in. None gives
            the upstream head. Defaults to
            ``dict(type='DisAlignCalibration')``.
        *args, **kwargs: Arguments of ``Shared2FCBBoxHead``.
    """

    def __init__(self,
                 *args,
                 calibration: Optional[dict] = dict(
                     type='DisAlignCalibration'),
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not self.with_cls:
            raise ValueError(
                f'{type(self).__name__} calibrates the class logits and '
                'needs with_cls=True')
        self._check_loss_classes()
        self.calibration = None
        if calibration is not None:
            self.calibration = self._build_calibration(calibration)

    def _build_calibration(self, cfg: dict):
        module = build_calibration(
            cfg,
            MODELS,
            'box head',
            dict(in_channels=self.cls_last_dim),
            defaults=dict(
                num_classes=self.num_classes, uncalibrated_columns=(-1, )))
        if module.num_logits != self.num_classes + 1 or (
                module.uncalibrated_columns != (self.num_classes, )):
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
        """A loss with class frequencies (GRW) must fit the head."""
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
        """Calibrated ``cls_score`` (background last) and ``bbox_pred``
        (None without regression) of RoI features ``(num_rois, C, H, W)``.
        """
        feats = self.roi_feature(x)
        cls_score = self.fc_cls(feats)
        if self.calibration is not None:
            cls_score = self.calibration(
                cls_score, feats, classifier_weight=self.fc_cls.weight)
        bbox_pred = self.fc_reg(feats) if self.with_reg else None
        return cls_score, bbox_pred

    def roi_feature(self, x: Tensor) -> Tensor:
        """The ``(num_rois, fc_out_channels)`` input of ``fc_cls`` and
        ``fc_reg``: the RoI features through the shared FCs (no shared
        convolutions, no branch-specific layers in this head)."""
        if self.with_avg_pool:
            x = self.avg_pool(x)
        x = x.flatten(1)
        for fc in self.shared_fcs:
            x = self.relu(fc(x))
        return x
