"""Generalized re-weight (GRW) cross-entropy loss of DisAlign (CVPR 2021),
one loss for the heads of mmpretrain, mmseg and mmdet."""
import math
import os
from typing import Optional, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from mmdisalign.utils.class_freq import (ClassFreqType, grw_weights,
                                         load_class_freq, load_class_freq_meta,
                                         max_grw_rho)
from mmdisalign.utils.misc import class_name
from ..precision import fp32_region, to_fp32

__all__ = ['GRWLossBase', 'GRWCrossEntropyLoss', 'load_grw_weights']

_REDUCTIONS = ('none', 'mean', 'sum')


def _safe_divide(numerator: Tensor, denominator: Union[Tensor, float,
                                                       int]) -> Tensor:
    """``numerator / denominator``; a zero denominator gives the numerator
    (then 0 and still connected to the scores), never NaN, without a
    host-device sync."""
    if isinstance(denominator, Tensor):
        denominator = denominator.to(numerator.dtype)
        ones = torch.ones_like(denominator)
        return numerator / torch.where(denominator > 0, denominator, ones)
    if denominator > 0:
        return numerator / float(denominator)
    return numerator * 0.


def load_grw_weights(
        class_freq: ClassFreqType, rho: float, num_classes: Optional[int],
        loss: str) -> Tuple[np.ndarray, np.ndarray, Optional[str]]:
    """The class frequencies, the float64 GRW weights (summing to the number
    of classes) and the file read (None for a list) of a GRW loss.

    Weights that are 0, denormal or infinite in float32 are refused: the
    loss would train on some classes only, or on ``loss: 0``; the error
    gives the largest usable ``rho`` of the frequency profile.

    Args:
        class_freq (str | list | dict): See :func:`load_class_freq`.
        rho (float): The GRW exponent.
        num_classes (int, optional): Expected number of classes.
        loss (str): The loss, for messages.
    """
    freqs = load_class_freq(class_freq, num_classes=num_classes)
    weights = grw_weights(freqs, rho)
    source = class_freq
    if isinstance(source, dict):
        source = source.get('file')
    source = (
        os.fspath(source) if isinstance(source, (str, os.PathLike)) else None)
    limits = np.finfo(np.float32)
    bad = np.flatnonzero(~((weights >= limits.tiny) & (weights <= limits.max)))
    if bad.size:
        classes = load_class_freq_meta(source)['classes'] if source else None
        shown = ', '.join(f'class {class_name(i, classes)}: {weights[i]:.3g}'
                          for i in bad[:5])
        more = f' and {bad.size - 5} more' if bad.size > 5 else ''
        raise ValueError(
            f'{loss}: rho={rho:g} gives {bad.size} of '
            f'{len(weights)} class weights outside the normal float32 range '
            f'[{limits.tiny:.3g}, {limits.max:.3g}] ({shown}{more}); they '
            'would be 0 or inf in training. The largest usable rho for '
            f'this frequency profile (max/min count '
            f'{freqs.max() / freqs.min():.4g}) is {max_grw_rho(freqs):g}.')
    return freqs, weights, source


class GRWLossBase(nn.Module):
    """What the softmax and the sigmoid GRW losses share: the checks of the
    common arguments, the class weights (a non-persistent ``class_weight``
    buffer: ``K`` GRW weights, then the background weight where the loss
    scores a background column) and the file they come from."""

    #: The ``avg_mode`` values the loss accepts.
    avg_modes: Tuple[str, ...] = ()
    #: Whether the scores have a background column after the ``K`` class
    #: columns (:class:`GRWCrossEntropyLoss` with ``with_background=True``;
    #: the sigmoid loss weights background elements but has no column).
    with_background: bool = False

    def _init_grw(self, class_freq: ClassFreqType, rho: float,
                  num_classes: Optional[int], reduction: str, avg_mode: str,
                  loss_weight: float, background_weight: float,
                  with_background: bool) -> None:
        if reduction not in _REDUCTIONS:
            raise ValueError(f'reduction must be one of {_REDUCTIONS}, got '
                             f'{reduction!r}')
        if avg_mode not in self.avg_modes:
            raise ValueError(f'avg_mode must be one of {self.avg_modes}, got '
                             f'{avg_mode!r}')
        if not math.isfinite(loss_weight):
            raise ValueError(
                f'loss_weight must be a finite number, got {loss_weight!r}')
        if not (math.isfinite(background_weight) and background_weight >= 0):
            raise ValueError(f'background_weight must be a finite number '
                             f'>= 0, got {background_weight!r}')
        freqs, weights, self.source = load_grw_weights(class_freq, rho,
                                                       num_classes,
                                                       type(self).__name__)
        if with_background:
            weights = np.append(weights, float(background_weight))
        self.num_classes = len(freqs)
        self.rho = float(rho)
        self.reduction = reduction
        self.avg_mode = avg_mode
        self.loss_weight = float(loss_weight)
        self.background_weight = float(background_weight)
        # Derived from the config, not saved: stage-1 checkpoints lack it.
        self.register_buffer(
            'class_weight',
            torch.tensor(weights, dtype=torch.float32),
            persistent=False)

    def _own_repr(self) -> str:
        """The arguments of a subclass shown after ``rho`` (e.g. ``',
        gamma=2.0'``)."""
        return ''

    def extra_repr(self) -> str:
        text = (f'num_classes={self.num_classes}, rho={self.rho}'
                f'{self._own_repr()}, avg_mode={self.avg_mode!r}, '
                f'reduction={self.reduction!r}, '
                f'loss_weight={self.loss_weight}')
        if self.with_background:
            text += f', background_weight={self.background_weight}'
        if self.source:
            text += f', class_freq={self.source!r}'
        return text

    def check_num_classes(self,
                          num_classes: int,
                          head: str,
                          tool: str,
                          loss_key: str = 'loss_cls',
                          background: bool = False,
                          field: str = 'num_classes') -> None:
        """Refuse, when a head is built, a GRW loss counted for another
        number of classes than the head predicts.

        The head scores ``num_classes`` class columns, then one background
        column where ``background`` (mmdet's softmax heads, ``num_classes +
        1`` logits); the loss expects :attr:`num_classes` (its frequencies)
        class columns, then one background column where
        :attr:`with_background`. Both must agree column for column (K - 1
        frequencies with a background column on a head of K classes and no
        background would weight the last class as background). The DisAlign
        heads of every task call it; a custom head can too.

        Args:
            num_classes (int): The head's number of classes, background
                excluded.
            head (str): The head (its class name), for the message.
            tool (str): The script that writes the frequency file of a
                training set, named in the fix.
            loss_key (str): The head's argument holding the loss, for the
                message. Defaults to 'loss_cls'.
            background (bool): Whether the head scores a background column
                after its classes. Defaults to False.
            field (str): The head's argument holding ``num_classes``, for
                the message. Defaults to 'num_classes'.

        Raises:
            ValueError: The counts differ; the message names the head, both
                counts, the frequency file and ``tool``.
        """
        if (self.num_classes == num_classes
                and self.with_background == background):
            return
        head_background = ' + 1 background column' if background else ''
        loss_background = (' + 1 background column (with_background=True)'
                           if self.with_background else '')
        origin = (f"the class_freq file '{self.source}'"
                  if self.source else 'its class_freq list')
        if self.num_classes == num_classes:
            fix = ('the classes agree, the background column does not: '
                   f'build the loss with with_background={background}')
        else:
            fix = ("class_freq must count the classes of this model's "
                   f'training set: write its frequency file with {tool}')
        raise ValueError(
            f'{head} predicts {field}={num_classes} classes{head_background}'
            f' but its {loss_key} {type(self).__name__} has '
            f'{self.num_classes} class frequencies from {origin}'
            f'{loss_background}; {fix}')

    @property
    def class_freq_file(self) -> Optional[str]:
        """The class-frequency file read (ClassFreqCheckHook checks its
        class order), or None for a list."""
        return self.source


@MODELS.register_module()
class GRWCrossEntropyLoss(GRWLossBase):
    """Cross-entropy with generalized re-weighting (GRW) of the classes.

    Class ``c`` gets the fixed weight :func:`~mmdisalign.utils.grw_weights`
    of its training frequency. ``'mean'`` divides the weighted sum by, per
    ``avg_mode``: ``'weighted'`` the sum of the weights (``avg_factor``
    ignored), ``'pixel'`` the number of elements, ignored ones included,
    ``'valid'`` the non-ignored ones; ``avg_factor`` replaces the last two.
    Soft targets shaped like ``cls_score`` are supported. Labels out of
    range are caught by ``F.cross_entropy`` (checking them beforehand would
    synchronise host and device). See docs/grw_loss.md.

    Args:
        class_freq (list | np.ndarray | str | PathLike | dict): Training
            frequencies of the (foreground) classes, a class-frequency file
            or ``dict(file=path, key=name)``
            (:func:`mmdisalign.utils.load_class_freq`).
        rho (float): GRW exponent; 0: no re-weighting, 1: class-balanced.
            Defaults to 1.0.
        num_classes (int, optional): Must equal the number of frequencies.
            Defaults to None.
        reduction (str): 'mean', 'sum' or 'none'. Defaults to 'mean'.
        avg_mode (str): 'weighted', 'pixel' or 'valid'.
            Defaults to 'weighted'.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        ignore_index (int): Label without loss; a call may override it
            (mmseg passes its head's). Defaults to -100.
        with_background (bool): Add the background class (mmdet's label
            ``num_classes``). Defaults to False.
        background_weight (float): Its weight. Defaults to 1.0.
        loss_name (str): Name in mmseg's loss dict; must start with
            ``'loss_'``. Defaults to 'loss_grw'.
    """

    # Read by mmdet heads: a plain softmax classifier.
    use_sigmoid = False
    custom_cls_channels = False
    custom_activation = False
    custom_accuracy = False
    avg_modes = ('weighted', 'pixel', 'valid')

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
        if not loss_name.startswith('loss_'):
            raise ValueError(f"loss_name must start with 'loss_' (mmseg "
                             f'only back-propagates such entries), got '
                             f'{loss_name!r}')
        self._init_grw(class_freq, rho, num_classes, reduction, avg_mode,
                       loss_weight, background_weight, with_background)
        self.ignore_index = ignore_index
        self.with_background = with_background
        self.loss_name = loss_name

    def forward(self,
                cls_score: Tensor,
                label: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[Union[float, Tensor]] = None,
                reduction_override: Optional[str] = None,
                ignore_index: Optional[int] = None) -> Tensor:
        """Compute the GRW loss.

        Args:
            cls_score (Tensor): Logits ``(N, C)`` or ``(N, C, d1, ...)``.
            label (Tensor): Hard labels ``(N,)`` / ``(N, d1, ...)``, or soft
                targets shaped like ``cls_score``.
            weight (Tensor, optional): Per-element weights (mmdet label
                weights, mmseg seg_weight). Defaults to None.
            avg_factor (float | Tensor, optional): Denominator of a
                ``'mean'`` in the 'pixel' and 'valid' modes (see the class).
                Defaults to None.
            reduction_override (str, optional): Instead of
                ``self.reduction``. Defaults to None.
            ignore_index (int, optional): Instead of ``self.ignore_index``.
                Defaults to None.

        Returns:
            Tensor: A scalar, or per-element losses for ``'none'``; float32
            for float16 / bfloat16 scores or under autocast.
        """
        # Mixed precision: log-softmax, class weights and reduction in
        # float32 (docs/performance.md); float32 / float64 scores outside
        # autocast go through unchanged.
        with fp32_region(cls_score):
            return self._forward(
                to_fp32(cls_score), label, weight, avg_factor,
                reduction_override, ignore_index)

    def _forward(self, cls_score, label, weight, avg_factor,
                 reduction_override, ignore_index) -> Tensor:
        """:meth:`forward` in the precision of ``cls_score``."""
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
                cls_score, label, class_weight, ignore_index)

        if weight is not None:
            if weight.numel() != terms.numel():
                raise ValueError(
                    f'weight must have one value per element, shape '
                    f'{tuple(terms.shape)}, got {tuple(weight.shape)}')
            weight = weight.reshape(terms.shape).to(terms.dtype)
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
        """One column per class weight: another count would go unnoticed
        as long as the labels stay in range."""
        if cls_score.dim() < 2:
            raise ValueError(f'cls_score must be a tensor of shape (N, C) or '
                             f'(N, C, ...), got {tuple(cls_score.shape)}')
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
        if label.is_floating_point():  # .long() would truncate silently
            raise TypeError(f'hard labels must be integers, got dtype '
                            f'{label.dtype}')
        label = label.long()
        valid = label != ignore_index
        try:
            ce = F.cross_entropy(
                cls_score, label, reduction='none', ignore_index=ignore_index)
            elem_weights = class_weight[torch.where(valid, label, 0)] * valid
        except (IndexError, RuntimeError):
            # Error path only: here reading the labels costs nothing.
            num = class_weight.numel()
            bad = valid & ((label < 0) | (label >= num))
            if not bad.any():
                raise
            values = torch.unique(label[bad])[:10].tolist()
            raise ValueError(
                f'labels must be in [0, {num - 1}] or equal '
                f'ignore_index={ignore_index}, found {values}; check the '
                f'number of classes (with_background={self.with_background}) '
                'and the ignore_index of the head') from None
        return elem_weights * ce, elem_weights, valid

    @staticmethod
    def _soft_terms(cls_score: Tensor, target: Tensor,
                    class_weight: Tensor) -> tuple:
        """Per-element weighted soft CE and ``sum_k y_k w_k``."""
        # A size-1 dimension would broadcast silently.
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
