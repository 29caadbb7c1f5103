"""Top-1 accuracy overall and on many / medium / few-shot classes."""
import csv
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger
from mmpretrain.registry import METRICS

from mmdisalign.utils.class_freq import load_class_freq, load_class_freq_meta
from ..datasets.list_file import list_file_class_counts

__all__ = ['LongTailAccuracy', 'long_tail_groups']


def long_tail_groups(train_counts: Sequence[int],
                     many_thr: float = 100,
                     few_thr: float = 20) -> np.ndarray:
    """The group name of every class: ``'many'`` (count > ``many_thr``),
    ``'few'`` (count < ``few_thr``) or ``'medium'``."""
    if few_thr > many_thr:
        raise ValueError(
            f'few_thr ({few_thr}) must not exceed many_thr ({many_thr})')
    counts = np.asarray(train_counts)
    groups = np.full(counts.shape, 'medium', dtype=object)
    groups[counts > many_thr] = 'many'
    groups[counts < few_thr] = 'few'
    return groups


@METRICS.register_module()
class LongTailAccuracy(BaseMetric):
    """Top-1 accuracy, overall and per many / medium / few-shot group.

    Metrics, in percent: ``top1``, ``many``, ``medium``, ``few`` (mean
    per-class accuracy of each :func:`long_tail_groups` group; an empty
    group is left out with a warning) and ``mean_class``. The per-class
    accuracy goes to ``<out_dir>/<file_prefix>.json`` and ``.csv``. See
    docs/cls.md.

    Args:
        train_ann_file (str, optional): Training list file ("relative/path
            label"). Defaults to None.
        class_freq (str | list, optional): Class-frequency JSON (or the
            counts). Defaults to None. Exactly one of the two is needed.
        num_classes (int, optional): Number of classes; defaults to the
            number of classes of the evaluated dataset.
        data_root (str): Joined with a relative ``train_ann_file``.
            Defaults to ''.
        many_thr (float): "many": more training images. Defaults to 100.
        few_thr (float): "few": fewer training images. Defaults to 20.
        out_dir (str, optional): Where the per-class files go. Defaults to
            None (the log directory; nothing is written without one).
        file_prefix (str): File name without extension. Defaults to
            ``'per_class_accuracy'``.
        collect_device (str): Defaults to ``'cpu'``.
        prefix (str, optional): Metric-name prefix. Defaults to ``'lt'``.
    """
    default_prefix: Optional[str] = 'lt'

    def __init__(self,
                 train_ann_file: Optional[str] = None,
                 class_freq=None,
                 num_classes: Optional[int] = None,
                 data_root: str = '',
                 many_thr: float = 100,
                 few_thr: float = 20,
                 out_dir: Optional[str] = None,
                 file_prefix: str = 'per_class_accuracy',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if (train_ann_file is None) == (class_freq is None):
            raise ValueError(
                'LongTailAccuracy needs exactly one source of training '
                'class counts: train_ann_file (a training list file) or '
                'class_freq (a class-frequency JSON)')
        long_tail_groups([], many_thr, few_thr)  # checks the thresholds
        if train_ann_file is not None and data_root and not osp.isabs(
                train_ann_file):
            train_ann_file = osp.join(data_root, train_ann_file)
        self.train_ann_file = train_ann_file
        self.class_freq = class_freq
        self.num_classes = num_classes
        self.many_thr = many_thr
        self.few_thr = few_thr
        self.out_dir = out_dir
        self.file_prefix = file_prefix
        self._train_counts: Optional[np.ndarray] = None

    def _class_names(self) -> Optional[List[str]]:
        classes = (self.dataset_meta or {}).get('classes')
        return list(classes) if classes is not None else None

    def get_train_counts(self) -> np.ndarray:
        """Training images per class, shape (K,) (loaded once)."""
        if self._train_counts is not None:
            return self._train_counts
        names = self._class_names()
        num_classes = self.num_classes
        if num_classes is None and names is not None:
            num_classes = len(names)
        if self.train_ann_file is not None:
            if num_classes is None:
                raise ValueError(
                    'LongTailAccuracy: set num_classes (the evaluated '
                    'dataset has no class names)')
            counts = list_file_class_counts(self.train_ann_file, num_classes,
                                            names)
        else:
            counts = load_class_freq(self.class_freq, num_classes=num_classes)
            if isinstance(self.class_freq, str) and names is not None:
                file_names = load_class_freq_meta(self.class_freq)['classes']
                if file_names is not None and list(file_names) != names:
                    same = [a == b for a, b in zip(file_names, names)]
                    i = same.index(False)
                    raise ValueError(
                        f'{self.class_freq} is for another dataset: class '
                        f'{i} is {file_names[i]!r} there but {names[i]!r} '
                        'in the evaluated dataset')
        self._train_counts = np.asarray(counts)
        return self._train_counts

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Store the predicted and true label of every sample."""
        for sample in data_samples:
            if 'pred_score' in sample:
                pred = int(sample['pred_score'].argmax())
            else:
                pred = int(sample['pred_label'].reshape(-1)[0])
            gt = int(sample['gt_label'].reshape(-1)[0])
            self.results.append((pred, gt))

    def compute_metrics(self, results: List) -> Dict[str, float]:
        """Compute the accuracies and write the per-class files."""
        counts = self.get_train_counts()
        num_classes = len(counts)
        pairs = np.asarray(results, dtype=np.int64).reshape(-1, 2)
        pred, gt = pairs[:, 0], pairs[:, 1]
        if gt.size and (gt.min() < 0 or gt.max() >= num_classes):
            raise ValueError(
                f'ground-truth label {int(gt.max())} is out of range for the '
                f'{num_classes} classes of the training counts')
        correct = pred == gt
        num_test = np.bincount(gt, minlength=num_classes)
        num_correct = np.bincount(gt[correct], minlength=num_classes)
        with np.errstate(invalid='ignore', divide='ignore'):
            class_acc = 100.0 * num_correct / num_test
        groups = long_tail_groups(counts, self.many_thr, self.few_thr)

        metrics = dict(top1=100.0 *
                       float(correct.mean()) if gt.size else float('nan'))
        logger = MMLogger.get_current_instance()
        for group in ('many', 'medium', 'few'):
            sel = (groups == group) & (num_test > 0)
            if sel.any():
                metrics[group] = float(class_acc[sel].mean())
            else:
                logger.warning(
                    f'LongTailAccuracy: no evaluated class in the {group!r} '
                    f'group (thresholds: many > {self.many_thr}, few < '
                    f'{self.few_thr})')
        seen = num_test > 0
        metrics['mean_class'] = float(class_acc[seen].mean())

        self._write_per_class(counts, groups, num_test, num_correct, class_acc,
                              metrics)
        return metrics

    def _write_per_class(self, counts, groups, num_test, num_correct,
                         class_acc, metrics) -> None:
        out_dir = self.out_dir
        if out_dir is None:  # the log directory of the run, if any
            log_file = getattr(MMLogger.get_current_instance(), 'log_file',
                               None)
            if not log_file:
                return
            out_dir = osp.dirname(log_file)
        os.makedirs(out_dir, exist_ok=True)
        names = self._class_names()
        rows = []
        for i in range(len(counts)):
            acc = float(class_acc[i])
            rows.append(
                dict(
                    index=i,
                    name=names[i] if names and i < len(names) else str(i),
                    train_count=counts[i].item(),
                    group=str(groups[i]),
                    num_test=int(num_test[i]),
                    num_correct=int(num_correct[i]),
                    accuracy=None if np.isnan(acc) else acc))
        base = osp.join(out_dir, self.file_prefix)
        summary = dict(
            metrics=metrics,
            many_thr=self.many_thr,
            few_thr=self.few_thr,
            train_counts_source=self.train_ann_file or
            (self.class_freq if isinstance(self.class_freq, str) else 'list'),
            classes=rows)
        with open(base + '.json', 'w') as f:
            json.dump(summary, f, indent=1)
        with open(base + '.csv', 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        MMLogger.get_current_instance().info(
            f'LongTailAccuracy: per-class accuracy written to {base}.json '
            'and .csv')
