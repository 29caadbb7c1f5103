"""DisAlign on mmpretrain's linear classification head."""
from typing import Optional, Tuple

import torch
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS

from mmdisalign.models.calibration_builder import build_calibration

__all__ = ['DisAlignLinearClsHead']


@MODELS.register_module()
class DisAlignLinearClsHead(LinearClsHead):
    """A :class:`LinearClsHead` whose logits go through a calibration.

    Forward: ``calibration(fc(x), x, classifier_weight=fc.weight)``; ``fc``
    keeps its upstream name, so a stage-1 checkpoint loads without renaming.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Channels of the input feature.
        calibration (dict): Calibration config; ``num_classes`` and, where
            the calibration takes it, ``in_channels`` are filled in.
            Defaults to ``dict(type='DisAlignCalibration',
            init_mode='reference_cls')``.
        init_cfg (dict, optional): Init config of the head. Defaults to
            ``dict(type='Normal', layer='Linear', std=0.01)`` as upstream.
        **kwargs: Other arguments of :class:`LinearClsHead`.
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
        self.calibration = build_calibration(
            calibration, MODELS, 'classification head',
            dict(num_classes=num_classes, in_channels=in_channels))

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """Calibrated class scores ``(N, num_classes)``."""
        pre_logits = self.pre_logits(feats)
        logits = self.fc(pre_logits)
        return self.calibration(
            logits, pre_logits, classifier_weight=self.fc.weight)
