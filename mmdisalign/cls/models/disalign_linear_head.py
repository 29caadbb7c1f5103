"""DisAlign on mmpretrain's linear classification head."""
from typing import Optional, Tuple

import torch
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS

from .utils import build_calibration

__all__ = ['DisAlignLinearClsHead']


@MODELS.register_module()
class DisAlignLinearClsHead(LinearClsHead):
    """A :class:`LinearClsHead` whose logits go through a calibration.

    ``fc`` is the original (stage-1) classifier under the same name as in
    ``LinearClsHead``, so a stage-1 checkpoint loads without renaming; the
    new parameters live under ``calibration.``. Forward: feature ``x`` ->
    ``z = fc(x)`` -> ``calibration(z, x, classifier_weight=fc.weight)``.
    The head holds no formula: the calibration module does.

    Any calibration of mmdisalign works: the DisAlign one (default, with
    the reference classification initialisation) or a post-hoc baseline
    (``LWSCalibration``, ``TauNormCalibration``,
    ``LogitAdjustCalibration``). Freezing ``fc`` (and the backbone) in
    stage 2 is the job of ``DisAlignFreezeHook``.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Channels of the input feature.
        calibration (dict): Calibration config; ``num_classes`` and, where
            the calibration takes it, ``in_channels`` are filled in.
            Defaults to ``dict(type='DisAlignCalibration',
            init_mode='reference_cls')``.
        init_cfg (dict, optional): Init config of the head. Defaults to
            ``dict(type='Normal', layer='Linear', std=0.01)`` as upstream
            (the calibration keeps its own initialisation).
        **kwargs: Other arguments of :class:`LinearClsHead` (``loss``,
            ``topk``, ``cal_acc``).
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 calibration: dict = dict(
                     type='DisAlignCalibration', init_mode='reference_cls'),
                 init_cfg: Optional[dict] = dict(
                     type='Normal', layer='Linear', std=0.01),
                 **kwargs) -> None:
        super().__init__(num_classes, in_channels, init_cfg=init_cfg, **kwargs)
        self.calibration = build_calibration(calibration, num_classes,
                                             in_channels)

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """Calibrated class scores ``(N, num_classes)``."""
        pre_logits = self.pre_logits(feats)
        logits = self.fc(pre_logits)
        return self.calibration(
            logits, pre_logits, classifier_weight=self.fc.weight)
