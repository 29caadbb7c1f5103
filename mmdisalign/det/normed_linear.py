"""Cosine classifier with a learnable scale, as the reference LVIS code."""
import torch
import torch.nn as nn
from mmdet.models.layers import NormedLinear
from mmdet.registry import MODELS

__all__ = ['LearnableScaleNormedLinear']


@MODELS.register_module()
class LearnableScaleNormedLinear(NormedLinear):
    """mmdet's ``NormedLinear`` whose scale is learned.

    The reference cosine box classifier learns its scale from an initial
    20 (and stage 2 freezes it with the rest of stage 1); mmdet's
    ``NormedLinear`` keeps ``tempearture`` (mmdet's spelling) a fixed
    float. Here ``tempearture`` is a scalar ``nn.Parameter`` with the same
    name and initial value; ``weight`` / ``bias``, their initialisation and
    the forward are ``NormedLinear``'s, so its checkpoints load (the scale
    then keeps its initial value: a stage-1 run has to learn it). Use it in
    both stages (``cls_predictor_cfg=dict(type='LearnableScaleNormedLinear',
    tempearture=20, bias=False)``) so that stage 2 loads the learned scale.
    See docs/reference.md.

    Args:
        *args: ``in_features``, ``out_features`` as ``nn.Linear``.
        tempearture (float): Initial scale. Defaults to 20.
        **kwargs: ``power``, ``eps``, ``bias`` as ``NormedLinear``.
    """

    def __init__(self, *args, tempearture: float = 20, **kwargs) -> None:
        super().__init__(*args, tempearture=tempearture, **kwargs)
        # NormedLinear stored a float under this name.
        del self.tempearture
        self.tempearture = nn.Parameter(torch.tensor(float(tempearture)))

    def extra_repr(self) -> str:
        return super().extra_repr() + ', learnable tempearture'
