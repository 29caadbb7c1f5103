"""Cosine classifier heads: stage-1 ``CosineClsHead`` and its DisAlign."""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS

from .disalign_cls_head import DisAlignClsHeadMixin

__all__ = ['CosineClsHead', 'DisAlignCosineClsHead']


@MODELS.register_module()
class CosineClsHead(LinearClsHead):
    """Cosine classifier: ``logit_j = scale * cos(x, w_j)``.

    The weight is ``fc.weight`` of a bias-free ``nn.Linear`` (the name of
    :class:`LinearClsHead`), both the feature and the class weights are
    L2-normalised, and ``scale`` is a learnable scalar parameter (or a
    fixed buffer with ``learn_scale=False``).

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Channels of the input feature.
        scale (float): Initial value of the scale. Defaults to 16.0.
        learn_scale (bool): Learn the scale. Defaults to True.
        eps (float): Epsilon of the L2 normalisation. Defaults to 1e-12.
        init_cfg (dict, optional): Init config. Defaults to
            ``dict(type='Normal', layer='Linear', std=0.01)``.
        **kwargs: Other arguments of :class:`LinearClsHead`.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 scale: float = 16.0,
                 learn_scale: bool = True,
                 eps: float = 1e-12,
                 init_cfg: Optional[dict] = dict(
                     type='Normal', layer='Linear', std=0.01),
                 **kwargs) -> None:
        super().__init__(num_classes, in_channels, init_cfg=init_cfg, **kwargs)
        if not scale > 0:
            raise ValueError(f'scale must be positive, got {scale}')
        self.fc = nn.Linear(in_channels, num_classes, bias=False)
        self.eps = eps
        scale = torch.tensor(float(scale))
        if learn_scale:
            self.scale = nn.Parameter(scale)
        else:
            self.register_buffer('scale', scale)

    def cosine_classify(
            self,
            pre_logits: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return ``(scale * cos, normalised feature)`` of ``pre_logits``."""
        x = F.normalize(pre_logits, dim=1, eps=self.eps)
        w = F.normalize(self.fc.weight, dim=1, eps=self.eps)
        return self.scale * F.linear(x, w), x

    def cosine_logits(
            self,
            feats: Tuple[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return ``(scale * cos, normalised feature)``."""
        return self.cosine_classify(self.pre_logits(feats))

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """Class scores ``(N, num_classes)``."""
        return self.cosine_logits(feats)[0]


@MODELS.register_module()
class DisAlignCosineClsHead(DisAlignClsHeadMixin, CosineClsHead):
    """DisAlign on :class:`CosineClsHead` (the paper's starred rows).

    A stage-1 ``CosineClsHead`` checkpoint (``fc.weight``, ``scale``) loads
    without renaming. As in the reference cosine head, the confidence
    sigma is computed from the L2-normalised feature.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Channels of the input feature.
        calibration (dict): See :class:`DisAlignClsHeadMixin`.
        **kwargs: Other arguments of :class:`CosineClsHead`.
    """

    def classify(
            self,
            pre_logits: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Cosine logits and the normalised feature (the confidence
        input)."""
        return self.cosine_classify(pre_logits)
