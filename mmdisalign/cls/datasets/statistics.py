"""Per-class training counts of any mmpretrain dataset."""
import copy
from typing import Optional, Tuple, Union

import numpy as np
from mmpretrain.registry import DATASETS

from .list_file import count_labels

__all__ = ['dataset_class_counts', 'dataset_labels']


def dataset_labels(dataset: object, user: str) -> np.ndarray:
    """The single-label ground truth of every sample, by
    ``get_gt_labels()`` or ``get_data_info(i)['gt_label']``; ``user`` names
    the caller in the error."""
    if hasattr(dataset, 'get_gt_labels'):
        labels = np.asarray(dataset.get_gt_labels())
    else:
        labels = np.asarray([
            dataset.get_data_info(i)['gt_label'] for i in range(len(dataset))
        ])
    if labels.dtype == object or labels.ndim != 1:
        raise ValueError(f'{user} needs single-label data (one integer '
                         'gt_label per sample)')
    return labels.astype(np.int64)


def dataset_class_counts(
        dataset: Union[dict, object],
        num_classes: Optional[int] = None
) -> Tuple[np.ndarray, Optional[list]]:
    """Count the samples per class of any mmpretrain single-label dataset
    (subsets and wrappers as they are sampled); a config is built with an
    empty pipeline.

    Args:
        dataset (dict | Dataset): The dataset or its config.
        num_classes (int, optional): The number of classes; defaults to
            the number of class names in the dataset's metainfo, else the
            largest label + 1.

    Returns:
        tuple: ``(counts, classes)``: int64 counts of shape (K,) and the
        class names (or None).
    """
    if isinstance(dataset, dict):
        cfg = copy.deepcopy(dataset)
        if 'pipeline' in cfg:
            cfg['pipeline'] = []
        dataset = DATASETS.build(cfg)
    labels = dataset_labels(dataset, 'dataset_class_counts')
    classes = getattr(dataset, 'metainfo', {}).get('classes')
    classes = list(classes) if classes is not None else None
    if num_classes is None:
        num_classes = (
            len(classes) if classes is not None else int(labels.max()) + 1)
    elif classes is not None and len(classes) != num_classes:
        raise ValueError(f'num_classes={num_classes} but the dataset has '
                         f'{len(classes)} class names')
    return count_labels(labels, num_classes), classes
