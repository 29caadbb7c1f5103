"""mIoU / mAcc overall and per head / body / tail group of classes."""
import math
import os
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from mmengine.logging import MMLogger
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS

from mmdisalign.utils.class_freq import load_class_freq, load_class_freq_meta

__all__ = ['HeadBodyTailIoUMetric', 'class_pixel_ratios', 'group_classes']


def class_pixel_ratios(class_freq: Union[str, os.PathLike],
                       key: str = 'counts') -> np.ndarray:
    """Per-class training pixel ratios from a class-frequency file: the
    values of a ``'pixel_ratio'`` file, else ``count / total_pixels`` (all
    pixels, ignored ones included, like ADE20K's objectInfo150) when the
    file has ``total_pixels``, else ``count / sum(counts)``.

    Args:
        class_freq (str | PathLike): The frequency JSON file.
        key (str): The per-class list to read. Defaults to ``'counts'``.

    Returns:
        np.ndarray: float64 ratios, shape (K,).
    """
    meta = load_class_freq_meta(class_freq)
    counts = load_class_freq(class_freq, key=key, allow_zero=True)
    if meta.get('count_type') == 'pixel_ratio':
        return counts
    total = meta.get('total_pixels')
    if total is not None:
        if not total > 0:
            raise ValueError(f'{os.fspath(class_freq)}: "total_pixels" must '
                             f'be a positive number, got {total!r}')
        if counts.sum() > total:
            raise ValueError(
                f'{os.fspath(class_freq)}: the class counts sum to '
                f'{counts.sum():g}, more than "total_pixels" = {total}')
        return counts / float(total)
    if counts.sum() <= 0:
        raise ValueError(f'{os.fspath(class_freq)}: all counts are zero')
    return counts / counts.sum()


def group_classes(
    ratios: Sequence[float], thresholds: Sequence[float] = (0.01, 0.001)
) -> List[np.ndarray]:
    """Split classes by ratio: ``> t[0]``, ``(t[1], t[0]]``, ..., ``<= t[-1]``.

    Args:
        ratios (Sequence[float]): Per-class ratios.
        thresholds (Sequence[float]): Strictly decreasing positive
            thresholds; ``len(thresholds) + 1`` groups. Defaults to
            ``(0.01, 0.001)`` (head > 1 %, body 0.1 %..1 %, tail <= 0.1 %,
            the reference ADE20K split).

    Returns:
        list[np.ndarray]: Class indices of each group, most frequent first.
    """
    ratios = np.asarray(ratios, dtype=np.float64)
    bounds = [math.inf] + [float(t) for t in thresholds] + [-math.inf]
    return [
        np.flatnonzero((ratios <= upper) & (ratios > lower))
        for upper, lower in zip(bounds[:-1], bounds[1:])
    ]


@METRICS.register_module()
class HeadBodyTailIoUMetric(IoUMetric):
    """:class:`IoUMetric` plus mIoU and mAcc per frequency group of classes.

    Classes are grouped by their training pixel ratio
    (:func:`class_pixel_ratios`, :func:`group_classes`); ``{group}_mIoU``
    and ``{group}_mAcc`` are the ``nanmean`` of :class:`IoUMetric`'s
    per-class values over each group, in percent (NaN for an empty group).
    See docs/seg.md.

    Args:
        class_freq (str | PathLike): Frequency JSON of the training set,
            one entry per class of the evaluated dataset.
        thresholds (Sequence[float]): Ratio thresholds, strictly
            decreasing. Defaults to ``(0.01, 0.001)``.
        group_names (Sequence[str]): One name per group
            (``len(thresholds) + 1``). Defaults to
            ``('head', 'body', 'tail')``.
        class_freq_key (str): The per-class list of the file to use.
            Defaults to ``'counts'``.
        check_class_names (bool): Require the class names of the file (if
            it has any) to equal the dataset's (case and surrounding
            spaces ignored). Defaults to True.
        classwise (bool): Also return the IoU of every class, in percent,
            as ``IoU.{class name}`` (as mmdet's ``classwise`` returns the
            AP of every category). Defaults to False.
        **kwargs: Arguments of :class:`IoUMetric` (``iou_metrics``,
            ``ignore_index``, ``prefix``, ...). ``iou_metrics`` must
            include ``'mIoU'``.
    """

    def __init__(self,
                 class_freq: Union[str, os.PathLike],
                 thresholds: Sequence[float] = (0.01, 0.001),
                 group_names: Sequence[str] = ('head', 'body', 'tail'),
                 class_freq_key: str = 'counts',
                 check_class_names: bool = True,
                 classwise: bool = False,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.classwise = classwise
        if 'mIoU' not in self.metrics:  # a str or a list
            raise ValueError("HeadBodyTailIoUMetric needs 'mIoU' in "
                             f'iou_metrics, got {self.metrics!r}')
        self.thresholds = tuple(float(t) for t in thresholds)
        if not self.thresholds or self.thresholds[-1] <= 0 or any(
                a <= b for a, b in zip(self.thresholds, self.thresholds[1:])):
            raise ValueError('thresholds must be positive and strictly '
                             'decreasing (head first), got '
                             f'{tuple(thresholds)}')
        group_names = tuple(group_names)
        if len(group_names) != len(self.thresholds) + 1:
            raise ValueError(
                f'{len(self.thresholds)} thresholds make '
                f'{len(self.thresholds) + 1} groups, but group_names has '
                f'{len(group_names)} names: {group_names}')
        if len(set(group_names)) != len(group_names):
            raise ValueError(f'group_names must be distinct, got '
                             f'{group_names}')
        self.group_names = group_names
        self.class_freq = os.fspath(class_freq)
        self.check_class_names = check_class_names
        # Read now: a missing or broken file fails when the metric is
        # built, not after a whole evaluation.
        self.freq_meta = load_class_freq_meta(self.class_freq)
        self.ratios = class_pixel_ratios(self.class_freq, class_freq_key)
        self.groups = group_classes(self.ratios, self.thresholds)

    @IoUMetric.dataset_meta.setter
    def dataset_meta(self, dataset_meta: Optional[dict]) -> None:
        """Setting it (the Runner does before training) checks that the
        frequency file describes the dataset's classes."""
        if dataset_meta and dataset_meta.get('classes') is not None:
            self._check_dataset(dataset_meta['classes'])
        IoUMetric.dataset_meta.fset(self, dataset_meta)

    def _check_dataset(self, class_names: Sequence[str]) -> None:
        """The frequency file must describe the evaluated classes."""
        num = len(class_names)
        if len(self.ratios) != num:
            raise ValueError(
                f'the class-frequency file {self.class_freq} has '
                f'{len(self.ratios)} classes but the evaluated dataset has '
                f'{num}; use the frequency file of this dataset\'s '
                'training set')
        file_names = self.freq_meta.get('classes')
        if not self.check_class_names or file_names is None:
            return
        for index, (ours, theirs) in enumerate(zip(file_names, class_names)):
            if ours.strip().lower() != str(theirs).strip().lower():
                raise ValueError(
                    f'class {index} is {theirs!r} in the dataset but '
                    f'{ours!r} in the class-frequency file {self.class_freq}'
                    '; use the frequency file of this dataset (or '
                    'check_class_names=False if only the names differ)')

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Overall metrics of :class:`IoUMetric` plus the group means."""
        class_names = self.dataset_meta['classes']
        self._check_dataset(class_names)
        metrics = super().compute_metrics(results)
        if self.format_only:
            return metrics
        areas = tuple(zip(*results))
        per_class = self.total_area_to_metrics(
            sum(areas[0]), sum(areas[1]), sum(areas[2]), sum(areas[3]),
            ['mIoU'], self.nan_to_num, self.beta)
        lines = []
        for name, index in zip(self.group_names, self.groups):
            values = {}
            for key in ('IoU', 'Acc'):
                chosen = np.asarray(per_class[key], dtype=np.float64)[index]
                if chosen.size == 0 or np.all(np.isnan(chosen)):
                    values[key] = float('nan')
                else:
                    values[key] = float(np.round(np.nanmean(chosen) * 100, 2))
                metrics[f'{name}_m{key}'] = values[key]
            lines.append(f'{name}: {index.size} classes, mIoU '
                         f'{values["IoU"]:.2f}, mAcc {values["Acc"]:.2f}')
        if self.classwise:
            for name, iou in zip(class_names, per_class['IoU']):
                metrics[f'IoU.{name}'] = float(np.round(iou * 100, 2))
        thresholds = ', '.join(f'{t:g}' for t in self.thresholds)
        MMLogger.get_current_instance().info(
            f'groups by training pixel ratio (thresholds {thresholds}; '
            f'{self.class_freq}):\n' + '\n'.join(lines))
        return metrics

    def class_groups(self) -> Dict[str, List[int]]:
        """The class indices of each group, by group name."""
        return {
            name: index.tolist()
            for name, index in zip(self.group_names, self.groups)
        }
