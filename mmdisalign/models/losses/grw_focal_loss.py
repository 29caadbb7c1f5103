"""Generalized re-weight (GRW) sigmoid focal loss: the GRW of DisAlign for
sigmoid classifiers without a background column (mmdet's RetinaNet, FCOS,
ATSS). See docs/grw_loss.md."""
import math
from typing import Optional, Union

import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from mmdisalign.utils.class_freq import ClassFreqType
from .grw_loss import _REDUCTIONS, GRWLossBase, _safe_divide

__all__ = ['GRWFocalLoss']


@MODELS.register_module()
class GRWFocalLoss(GRWLossBase):
    """Sigmoid focal loss with generalized re-weighting (GRW) of the classes.

    For an anchor (or location) ``i`` with label ``y_i`` (``K`` means
    background, mmdet's convention), per-element weight ``s_i`` and ``K``
    sigmoid logits ``z_ik``::

        L = sum_i s_i w_{y_i} sum_k FL(z_ik, [y_i == k]) / D

    ``FL`` is the binary focal term of mmdet's ``FocalLoss`` (``gamma``,
    ``alpha``), ``w_c`` the GRW weight of class ``c``
    (:func:`~mmdisalign.utils.grw_weights`, summing to ``K``) and
    ``w_K = background_weight``. ``D`` is, per ``avg_mode``,
    ``'weighted'``: ``sum`` of ``s_i w_{y_i}`` over the foreground elements
    (``avg_factor`` ignored), ``'avg_factor'``: mmdet's ``avg_factor`` (the
    number of positive anchors), else the number of elements. ``rho=0``
    gives mmdet's ``FocalLoss`` normalised by the number of positives.

    Args:
        class_freq (list | np.ndarray | str | PathLike | dict): Training
            frequencies of the ``K`` classes or a class-frequency file, as
            :func:`mmdisalign.utils.load_class_freq` reads them.
        rho (float): GRW exponent; 0: no re-weighting. Defaults to 1.0.
        num_classes (int, optional): Must equal the number of frequencies.
            Defaults to None.
        use_sigmoid (bool): Must be True; mmdet's dense heads read it from
            the config to predict ``K`` columns without background.
            Defaults to True.
        gamma (float): Focusing parameter. Defaults to 2.0.
        alpha (float): Weight of the positive binary terms.
            Defaults to 0.25.
        background_weight (float): ``w`` of background elements.
            Defaults to 1.0.
        reduction (str): 'mean', 'sum' or 'none'. Defaults to 'mean'.
        avg_mode (str): 'weighted' or 'avg_factor'.
            Defaults to 'weighted'.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    # Read by mmdet heads: a plain sigmoid classifier.
    use_sigmoid = True
    custom_cls_channels = False
    custom_activation = False
    custom_accuracy = False
    avg_modes = ('weighted', 'avg_factor')

    def __init__(self,
                 class_freq: ClassFreqType,
                 rho: float = 1.0,
                 num_classes: Optional[int] = None,
                 use_sigmoid: bool = True,
                 gamma: float = 2.0,
                 alpha: float = 0.25,
                 background_weight: float = 1.0,
                 reduction: str = 'mean',
                 avg_mode: str = 'weighted',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if not use_sigmoid:
            raise ValueError(
                'GRWFocalLoss is the sigmoid GRW loss (K columns, no '
                'background column) and needs use_sigmoid=True; a softmax '
                'head (num_classes + 1 columns) takes GRWCrossEntropyLoss')
        if not math.isfinite(gamma):
            raise ValueError(f'gamma must be a finite number, got {gamma!r}')
        if not 0 <= alpha <= 1:
            raise ValueError(f'alpha must be in [0, 1], got {alpha!r}')
        # K class weights + the background one (the label of negatives).
        self._init_grw(class_freq, rho, num_classes, reduction, avg_mode,
                       loss_weight, background_weight, True)
        self.gamma = float(gamma)
        self.alpha = float(alpha)

    def _own_repr(self) -> str:
        return f', gamma={self.gamma}, alpha={self.alpha}'

    def forward(self,
                cls_score: Tensor,
                label: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[Union[float, Tensor]] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Compute the loss.

        Args:
            cls_score (Tensor): Sigmoid logits ``(M, K)``.
            label (Tensor): Labels ``(M,)`` in ``[0, K]``, ``K`` the
                background.
            weight (Tensor, optional): ``(M,)`` element weights (mmdet's
                label weights). Defaults to None.
            avg_factor (float | Tensor, optional): The denominator of the
                ``'avg_factor'`` mode. Defaults to None.
            reduction_override (str, optional): Instead of
                ``self.reduction``. Defaults to None.

        Returns:
            Tensor: A scalar, or ``(M, K)`` terms for ``'none'``.
        """
        reduction = reduction_override or self.reduction
        if reduction not in _REDUCTIONS:
            raise ValueError(f'reduction_override must be one of '
                             f'{_REDUCTIONS}, got {reduction_override!r}')
        self._check_score(cls_score)
        if label.is_floating_point():
            raise TypeError(f'labels must be integers, got dtype '
                            f'{label.dtype}')
        num = self.num_classes
        label = label.reshape(-1, 1).long()
        # One-hot of the K classes; the background row stays all-zero.
        target = cls_score.new_zeros(
            (cls_score.size(0), num + 1)).scatter_(1, label, 1.)[:, :num]
        class_weight = self.class_weight.to(cls_score)
        elem_weight = class_weight[label]  # (M, 1)
        prob = cls_score.sigmoid()
        prob_t = prob * target + (1 - prob) * (1 - target)
        alpha_t = self.alpha * target + (1 - self.alpha) * (1 - target)
        ce = F.binary_cross_entropy_with_logits(
            cls_score, target, reduction='none')
        terms = alpha_t * (1 - prob_t).pow(self.gamma) * ce * elem_weight
        foreground = (label < num).to(terms.dtype)
        if weight is not None:
            if weight.numel() != terms.size(0):
                raise ValueError(
                    f'weight must have one value per element, shape '
                    f'({terms.size(0)},), got {tuple(weight.shape)}')
            weight = weight.reshape(-1, 1).to(terms.dtype)
            terms = terms * weight
            foreground = foreground * weight
        if reduction == 'none':
            loss = terms
        elif reduction == 'sum':
            loss = terms.sum()
        else:
            if self.avg_mode == 'weighted':
                denominator = (foreground * elem_weight).sum()
            elif avg_factor is not None:
                denominator = avg_factor
            else:
                denominator = terms.numel()
            loss = _safe_divide(terms.sum(), denominator)
        return self.loss_weight * loss

    def _check_score(self, cls_score: Tensor) -> None:
        """``K`` sigmoid columns; ``K + 1`` is a softmax head."""
        if cls_score.dim() != 2:
            raise ValueError(f'cls_score must be a tensor of shape (M, K), '
                             f'got {tuple(cls_score.shape)}')
        if cls_score.size(1) != self.num_classes:
            origin = (f"the frequency file '{self.source}'"
                      if self.source else 'the class_freq list')
            hint = ''
            if cls_score.size(1) == self.num_classes + 1:
                hint = ('; a head with a background column is a softmax '
                        'head: give it GRWCrossEntropyLoss('
                        'with_background=True)')
            raise ValueError(
                f'cls_score has {cls_score.size(1)} class scores (dim 1) but '
                f'GRWFocalLoss has {self.num_classes} class frequencies from '
                f'{origin}{hint}. Use the frequency file of the dataset the '
                'head predicts')
