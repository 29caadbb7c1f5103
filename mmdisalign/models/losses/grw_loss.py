"""Generalized re-weight (GRW) cross-entropy loss of DisAlign (CVPR 2021).

One loss for the three task libraries: it accepts the exact calls of
mmpretrain's ``ClsHead``, mmseg's ``BaseDecodeHead.loss_by_feat`` (and its
OHEM pixel sampler) and mmdet's ``BBoxHead.loss`` (and its OHEM samplers).
"""
import math
import numbers
import os
from typing import Optional, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from mmdisalign.utils.class_freq import (ClassFreqType, grw_weights,
                                         load_class_freq)

__all__ = ['GRWCrossEntropyLoss']

_REDUCTIONS = ('none', 'mean', 'sum')
_AVG_MODES = ('weighted', 'pixel', 'valid')


def _finite_real(value) -> bool:
    """Whether ``value`` is a finite real number (bools excluded)."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def _describe_source(class_freq: ClassFreqType) -> Optional[str]:
    """Return the frequency file named by ``class_freq``, if any."""
    if isinstance(class_freq, dict):
        class_freq = class_freq.get('file')
    if isinstance(class_freq, (str, os.PathLike)):
        return os.fspath(class_freq)
    return None


def _safe_divide(numerator: Tensor, denominator: Union[Tensor, float,
                                                       int]) -> Tensor:
    """``numerator / denominator``, or a zero keeping the graph when 0.

    A zero denominator only happens when every term of the numerator has a
    zero weight (empty input, everything ignored, all sample weights 0),
    so the numerator is itself 0 and still connected to the scores: the
    result is that zero, never NaN, and no host-device sync is needed.
    """
    if isinstance(denominator, Tensor):
        denominator = denominator.to(numerator.dtype)
        ones = torch.ones_like(denominator)
        return numerator / torch.where(denominator > 0, denominator, ones)
    denominator = float(denominator)
    if denominator > 0:
        return numerator / denominator
    return numerator * 0.


@MODELS.register_module()
class GRWCrossEntropyLoss(nn.Module):
    """Cross-entropy with generalized re-weighting (GRW) of the classes.

    Class ``c`` gets the fixed weight
    :math:`w_c = K (1/r_c)^{\\rho} / \\sum_k (1/r_k)^{\\rho}` from its
    training frequency :math:`r_c` (see
    :func:`mmdisalign.utils.class_freq.grw_weights`; the weights sum to the
    number of classes K, as in the reference code). For element ``i``
    (an image, an RoI or a pixel) with label :math:`y_i`, optional sample
    weight :math:`s_i` and :math:`CE_i = -\\log p_{i, y_i}`, the reduction
    ``'mean'`` gives, depending on ``avg_mode``:

    - ``'weighted'``: :math:`\\sum_i s_i w_{y_i} CE_i / \\sum_i s_i
      w_{y_i}`, the weighted mean of ``F.cross_entropy(weight=w)``. The
      reference for classification and detection. ``avg_factor`` is
      ignored: the heads pass the number of samples, which would turn the
      weighted mean into a plain mean of :math:`w \\cdot CE`.
    - ``'pixel'``: :math:`\\sum_i s_i w_{y_i} CE_i / N`, with N the number
      of elements INCLUDING ignored ones. The reference for semantic
      segmentation (mmseg). A given ``avg_factor`` replaces N.
    - ``'valid'``: the same divided by the number of non-ignored elements
      (mmseg's ``avg_non_ignore=True``). A given ``avg_factor`` replaces it.

    ``'sum'`` returns :math:`\\sum_i s_i w_{y_i} CE_i` and ``'none'`` the
    per-element :math:`s_i w_{y_i} CE_i` (0 where ignored), both ignoring
    ``avg_factor``. Everything is multiplied by ``loss_weight``. An input
    without any weighted element gives a loss of 0 that is still connected
    to ``cls_score``, never NaN.

    Soft targets (mixup / cutmix scores of shape (N, K), or (N, K, ...)
    for dense inputs) use :math:`\\sum_k w_k y_{ik} (-\\log p_{ik})` as the
    weighted term (torch's ``F.cross_entropy`` with ``weight`` and
    probability targets) and :math:`\\sum_k y_{ik} w_k` as the element's
    weight in the ``'weighted'`` mean; one-hot targets give exactly the
    hard-label loss, and a mix of two labels gives the same mix of their
    terms.

    With ``with_background=True`` (mmdet RoI heads) the scores have one
    more, LAST column for the background label ``num_classes``; it gets
    the fixed weight ``background_weight`` while the foreground weights
    still sum to the number of foreground classes.

    Args:
        class_freq (list | np.ndarray | str | PathLike | dict): Training
            frequencies of the (foreground) classes: the numbers, a JSON
            file written by :func:`mmdisalign.utils.save_class_freq`, or
            ``dict(file=path, key=name)`` for another per-class list of
            that file (e.g. ``'instance_count'``).
        rho (float): GRW exponent; 0 means no re-weighting, 1
            class-balanced. Defaults to 1.0.
        num_classes (int, optional): Number of (foreground) classes; if
            given it must equal the number of frequencies. Defaults to None.
        reduction (str): ``'mean'``, ``'sum'`` or ``'none'``.
            Defaults to 'mean'.
        avg_mode (str): Denominator of the mean: ``'weighted'``,
            ``'pixel'`` or ``'valid'`` (see above). Defaults to 'weighted'.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        ignore_index (int): Label value without loss; the call may override
            it (mmseg passes its head's ``ignore_index``, 255).
            Defaults to -100.
        with_background (bool): Add a last background class with weight
            ``background_weight`` (mmdet's label ``num_classes``).
            Defaults to False.
        background_weight (float): Weight of the background class.
            Defaults to 1.0.
        loss_name (str): Name of the loss in mmseg's loss dict; must start
            with ``'loss_'`` to be back-propagated. mmpretrain and mmdet
            ignore it. Defaults to 'loss_grw'.
    """

    # Read by mmdet's BBoxHead (getattr with default False) and by other
    # mmdet heads (``loss_cls.use_sigmoid``): a plain softmax classifier.
    use_sigmoid = False
    custom_cls_channels = False
    custom_activation = False
    custom_accuracy = False

    def __init__(self,
                 class_freq: ClassFreqType,
                 rho: float = 1.0,
                 num_classes: Optional[int] = None,
                 reduction: str = 'mean',
                 avg_mode: str = 'weighted',
                 loss_weight: float = 1.0,
                 ignore_index: int = -100,
                 with_background: bool = False,
                 background_weight: float = 1.0,
                 loss_name: str = 'loss_grw') -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f'reduction must be one of {_REDUCTIONS}, got '
                             f'{reduction!r}')
        if avg_mode not in _AVG_MODES:
            raise ValueError(f'avg_mode must be one of {_AVG_MODES}, got '
                             f'{avg_mode!r}')
        if not _finite_real(loss_weight):
            raise ValueError(
                f'loss_weight must be a finite number, got {loss_weight!r}')
        if not isinstance(ignore_index, numbers.Integral) or isinstance(
                ignore_index, bool):
            raise TypeError(
                f'ignore_index must be an integer, got {ignore_index!r}')
        if not (_finite_real(background_weight) and background_weight >= 0):
            raise ValueError(f'background_weight must be a finite number '
                             f'>= 0, got {background_weight!r}')
        if not isinstance(loss_name, str) or not loss_name.startswith('loss_'):
            raise ValueError(f"loss_name must start with 'loss_' (mmseg "
                             f'only back-propagates such entries), got '
                             f'{loss_name!r}')

        freqs = load_class_freq(class_freq, num_classes=num_classes)
        weights = grw_weights(freqs, rho)  # float64, sums to len(freqs)
        if with_background:
            weights = np.append(weights, float(background_weight))

        self.source = _describe_source(class_freq)
        self.num_classes = len(freqs)
        self.rho = float(rho)
        self.reduction = reduction
        self.avg_mode = avg_mode
        self.loss_weight = float(loss_weight)
        self.ignore_index = int(ignore_index)
        self.with_background = bool(with_background)
        self.background_weight = float(background_weight)
        self._loss_name = loss_name
        # Fixed, derived from the config: not saved in checkpoints (stage-1
        # checkpoints lack it and loading must not report it missing).
        self.register_buffer(
            'class_weight',
            torch.tensor(weights, dtype=torch.float32),
            persistent=False)

    @property
    def loss_name(self) -> str:
        """Name of this loss in mmseg's loss dict."""
        return self._loss_name

    def extra_repr(self) -> str:
        """Summary shown by ``print(module)``."""
        text = (f'num_classes={self.num_classes}, rho={self.rho}, '
                f'avg_mode={self.avg_mode!r}, reduction={self.reduction!r}, '
                f'loss_weight={self.loss_weight}')
        if self.with_background:
            text += f', background_weight={self.background_weight}'
        if self.source:
            text += f', class_freq={self.source!r}'
        return text

    def forward(self,
                cls_score: Tensor,
                label: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[Union[float, Tensor]] = None,
                reduction_override: Optional[str] = None,
                ignore_index: Optional[int] = None,
                **kwargs) -> Tensor:
        """Compute the GRW loss.

        Args:
            cls_score (Tensor): Logits of shape (N, C) or (N, C, d1, ...),
                C being the number of classes (+1 with background).
            label (Tensor): Hard labels of shape (N,) or (N, d1, ...), or
                soft targets of the same shape as ``cls_score``.
            weight (Tensor, optional): Per-element weights (mmdet label
                weights, mmseg seg_weight), shaped like the hard labels.
                They scale both the numerator and the denominator of the
                ``'weighted'`` mean. Defaults to None.
            avg_factor (float | Tensor, optional): Replaces the denominator
                of a ``'mean'`` in the ``'pixel'`` and ``'valid'`` modes;
                IGNORED in the ``'weighted'`` mode (the faithful GRW mean
                is normalised by the summed weights) and for ``'sum'`` /
                ``'none'``. Defaults to None.
            reduction_override (str, optional): ``'none'``, ``'mean'`` or
                ``'sum'`` instead of ``self.reduction``. Defaults to None.
            ignore_index (int, optional): Overrides ``self.ignore_index``
                for this call. Defaults to None.

        Returns:
            Tensor: A scalar, or per-element losses for ``'none'``.
        """
        if kwargs:
            raise TypeError(f'GRWCrossEntropyLoss.forward got unexpected '
                            f'keyword arguments {sorted(kwargs)}')
        reduction = reduction_override or self.reduction
        if reduction not in _REDUCTIONS:
            raise ValueError(f'reduction_override must be one of '
                             f'{_REDUCTIONS}, got {reduction_override!r}')
        if ignore_index is None:
            ignore_index = self.ignore_index
        self._check_score(cls_score)
        class_weight = self.class_weight.to(cls_score.device)

        if label.dim() == cls_score.dim():
            terms, elem_weights = self._soft_terms(cls_score, label,
                                                   class_weight)
            valid = None
        else:
            terms, elem_weights, valid = self._hard_terms(
                cls_score, label, class_weight, int(ignore_index))

        if weight is not None:
            weight = self._check_sample_weight(weight, terms)
            terms = terms * weight
            elem_weights = elem_weights * weight

        if reduction == 'none':
            loss = terms
        elif reduction == 'sum':
            loss = terms.sum()
        else:
            if self.avg_mode == 'weighted':
                denominator = elem_weights.sum()
            elif avg_factor is not None:
                denominator = avg_factor
            elif self.avg_mode == 'pixel' or valid is None:
                denominator = terms.numel()
            else:
                denominator = valid.sum()
            loss = _safe_divide(terms.sum(), denominator)
        return self.loss_weight * loss

    def _check_score(self, cls_score: Tensor) -> None:
        """Check that ``cls_score`` has one column per weighted class."""
        if not isinstance(cls_score, Tensor) or cls_score.dim() < 2:
            shape = tuple(cls_score.shape) if isinstance(
                cls_score, Tensor) else type(cls_score).__name__
            raise ValueError(f'cls_score must be a tensor of shape (N, C) or '
                             f'(N, C, ...), got {shape}')
        expected = self.class_weight.numel()
        if cls_score.size(1) != expected:
            origin = (f"the frequency file '{self.source}'"
                      if self.source else 'the class_freq list')
            background = (' + 1 background (with_background=True)'
                          if self.with_background else '')
            raise ValueError(
                f'cls_score has {cls_score.size(1)} class scores (dim 1) but '
                f'GRWCrossEntropyLoss has {expected} class weights: '
                f'{self.num_classes} frequencies from {origin}'
                f'{background}. Use the frequency file of the dataset the '
                f'head predicts; mmdet RoI heads need with_background=True, '
                f'mmpretrain and mmseg heads with_background=False')

    def _hard_terms(self, cls_score: Tensor, label: Tensor,
                    class_weight: Tensor, ignore_index: int) -> tuple:
        """Per-element ``w_y * CE``, ``w_y`` and validity for hard labels."""
        expected = (cls_score.size(0), ) + tuple(cls_score.shape[2:])
        if tuple(label.shape) != expected:
            raise ValueError(
                f'label must have shape {expected} (hard labels) or '
                f'{tuple(cls_score.shape)} (soft targets) for cls_score of '
                f'shape {tuple(cls_score.shape)}, got {tuple(label.shape)}')
        if label.is_floating_point() or label.is_complex() or (label.dtype
                                                               == torch.bool):
            raise TypeError(f'hard labels must be integers, got dtype '
                            f'{label.dtype}')
        label = label.long()
        valid = label != ignore_index
        safe_label = torch.where(valid, label, 0)
        num_weights = class_weight.numel()
        if safe_label.numel() > 0:
            low, high = safe_label.aminmax()
            if low.item() < 0 or high.item() >= num_weights:
                out_of_range = (safe_label < 0) | (safe_label >= num_weights)
                values = torch.unique(label[out_of_range])[:10].tolist()
                raise ValueError(
                    f'labels must be in [0, {num_weights - 1}] or equal '
                    f'ignore_index={ignore_index}, found {values}; check '
                    f'the number of classes (with_background='
                    f'{self.with_background}) and the ignore_index of the '
                    f'head')
        ce = F.cross_entropy(
            cls_score, label, reduction='none', ignore_index=ignore_index)
        # Gather one weight per element (no per-class weight maps).
        elem_weights = class_weight[safe_label] * valid
        return elem_weights * ce, elem_weights, valid

    @staticmethod
    def _soft_terms(cls_score: Tensor, target: Tensor,
                    class_weight: Tensor) -> tuple:
        """Per-element weighted soft CE and ``sum_k y_k w_k``."""
        if target.shape != cls_score.shape:
            hard = (cls_score.size(0), ) + tuple(cls_score.shape[2:])
            raise ValueError(f'soft targets must have the shape of cls_score '
                             f'{tuple(cls_score.shape)} (hard labels: '
                             f'{hard}), got {tuple(target.shape)}')
        target = target.to(class_weight.dtype)
        view = (1, -1) + (1, ) * (cls_score.dim() - 2)
        weighted_target = target * class_weight.view(view)
        log_prob = F.log_softmax(cls_score, dim=1)
        terms = -(weighted_target * log_prob).sum(dim=1)
        return terms, weighted_target.sum(dim=1)

    @staticmethod
    def _check_sample_weight(weight: Tensor, terms: Tensor) -> Tensor:
        """Return ``weight`` as a float tensor shaped like ``terms``."""
        if not isinstance(weight, Tensor):
            raise TypeError(f'weight must be a tensor, got '
                            f'{type(weight).__name__}')
        if weight.shape != terms.shape:
            if weight.numel() != terms.numel():
                raise ValueError(
                    f'weight must have one value per element, shape '
                    f'{tuple(terms.shape)}, got {tuple(weight.shape)}')
            weight = weight.reshape(terms.shape)
        return weight.to(terms.dtype)
