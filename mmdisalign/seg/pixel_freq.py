"""Per-class pixel statistics of an mmseg dataset, read through the dataset
(its ``reduce_zero_label``, ``label_map`` and ``ignore_index``) with mmseg's
``LoadAnnotations`` and no other transform."""
import os
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
from mmseg.datasets.transforms import LoadAnnotations
from torch.utils.data import DataLoader, Dataset

from mmdisalign.utils.class_freq import save_class_freq
from mmdisalign.utils.misc import class_name, listed, unwrap_datasets

__all__ = ['count_class_pixels', 'check_classes_present', 'save_pixel_freq']


def _no_collate(item: Any) -> Any:
    """Keep the per-image numpy results as they are."""
    return item


class _LabelStats(Dataset):
    """Per-image label histogram of one segmentation dataset."""

    def __init__(self, dataset: Any, num_classes: int,
                 ignore_index: int) -> None:
        self.dataset = dataset
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.loader = LoadAnnotations(
            backend_args=getattr(dataset, 'backend_args', None))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Tuple[np.ndarray, int, int]:
        info = self.dataset.get_data_info(index)
        path = info.get('seg_map_path')
        if not path:
            raise ValueError(f'sample {index} of {type(self.dataset).__name__}'
                             ' has no seg_map_path: not a segmentation '
                             'training set with annotations')
        info.setdefault('seg_fields', [])
        info.setdefault('reduce_zero_label',
                        getattr(self.dataset, 'reduce_zero_label', False))
        label = self.loader(info)['gt_seg_map'].astype(np.int64).ravel()
        ignored = label == self.ignore_index
        valid = label[~ignored]
        bad = (valid < 0) | (valid >= self.num_classes)
        if bad.any():
            values = np.unique(valid[bad])[:10].tolist()
            raise ValueError(
                f'{path} has label value(s) {values} after '
                f'reduce_zero_label={info["reduce_zero_label"]} and the '
                f'label map, outside [0, {self.num_classes}) and not the '
                f'ignore index {self.ignore_index}: the annotation does not '
                f'match the dataset\'s {self.num_classes} classes')
        hist = np.bincount(valid, minlength=self.num_classes)
        return hist.astype(np.int64), int(label.size), int(ignored.sum())


def count_class_pixels(dataset: Any,
                       num_classes: Optional[int] = None,
                       ignore_index: Optional[int] = None,
                       num_workers: int = 0) -> Dict[str, Any]:
    """Count the pixels of every class over a segmentation dataset.

    Args:
        dataset: A built mmseg dataset (wrappers are unwrapped, a repeated
            dataset counted once). Its pipeline is not used.
        num_classes (int, optional): Number of classes; defaults to
            ``len(dataset.metainfo['classes'])``.
        ignore_index (int, optional): Label not counted as a class;
            defaults to the dataset's ``ignore_index`` (255).
        num_workers (int): Worker processes reading the maps.
            Defaults to 0 (in this process).

    Returns:
        dict: ``counts`` (pixels per class, int64 ``(K,)``),
        ``image_counts`` (images containing the class), ``total_pixels``
        (all pixels, ignored ones included), ``ignored_pixels``,
        ``num_images``, ``classes`` (names or None), ``ignore_index`` and
        ``reduce_zero_label``.
    """
    members = unwrap_datasets(dataset)
    classes = None
    metainfo = getattr(members[0], 'metainfo', None) or {}
    if metainfo.get('classes') is not None:
        classes = [str(name) for name in metainfo['classes']]
    if num_classes is None:
        if classes is None:
            raise ValueError('the dataset has no metainfo classes: pass '
                             'num_classes')
        num_classes = len(classes)
    elif classes is not None and len(classes) != num_classes:
        raise ValueError(f'num_classes={num_classes} but the dataset has '
                         f'{len(classes)} classes {classes}')
    counts = np.zeros(num_classes, np.int64)
    image_counts = np.zeros(num_classes, np.int64)
    total = ignored = images = 0
    reduce_zero_label = set()
    for member in members:
        member_classes = (getattr(member, 'metainfo', None)
                          or {}).get('classes')
        if member_classes is not None and classes is not None and list(
                map(str, member_classes)) != classes:
            raise ValueError('the concatenated datasets have different '
                             'classes; counts would mix label spaces')
        index = member.ignore_index if ignore_index is None and hasattr(
            member, 'ignore_index') else ignore_index
        index = 255 if index is None else int(index)
        reduce_zero_label.add(
            bool(getattr(member, 'reduce_zero_label', False)))
        stats = _LabelStats(member, num_classes, index)
        loader = DataLoader(
            stats,
            batch_size=None,
            shuffle=False,
            num_workers=num_workers,
            collate_fn=_no_collate)
        for hist, size, n_ignored in loader:
            hist = np.asarray(hist)
            counts += hist
            image_counts += hist > 0
            total += size
            ignored += n_ignored
            images += 1
    if images == 0:
        raise ValueError('the dataset is empty: no annotation map to count')
    return dict(
        counts=counts,
        image_counts=image_counts,
        total_pixels=total,
        ignored_pixels=ignored,
        num_images=images,
        classes=classes,
        ignore_index=index,
        reduce_zero_label=(reduce_zero_label.pop()
                           if len(reduce_zero_label) == 1 else None))


def check_classes_present(counts: Sequence[int],
                          classes: Optional[Sequence[str]] = None,
                          source: str = 'the dataset') -> None:
    """Raise ValueError naming the classes without a single pixel (GRW
    needs every class; a missing one often means a wrong
    ``reduce_zero_label``, label map or dataset).

    Args:
        counts (Sequence[int]): Pixels per class.
        classes (Sequence[str], optional): Class names. Defaults to None.
        source (str): What was counted, for the message.
            Defaults to 'the dataset'.
    """
    counts = np.asarray(counts)
    missing = np.flatnonzero(counts == 0)
    if missing.size == 0:
        return
    names = [class_name(i, classes) for i in missing]
    raise ValueError(
        f'{missing.size} of {counts.size} classes never occur in {source}: '
        f'class {listed(names, 20)}. GRW needs every class to occur '
        '(check reduce_zero_label, the label map and the data root), or '
        'pass --allow-missing to write the file anyway')


def save_pixel_freq(path: str,
                    stats: Dict[str, Any],
                    source: Optional[str] = None) -> dict:
    """Write :func:`count_class_pixels` statistics as a frequency JSON:
    pixels per class as ``counts``, the other statistics as extra entries.

    Args:
        path (str): Output JSON file.
        stats (dict): The output of :func:`count_class_pixels`.
        source (str, optional): Where the counts come from (config, data
            root). Defaults to None.

    Returns:
        dict: The written JSON object.
    """
    extra = {
        key: stats[key]
        for key in ('image_counts', 'total_pixels', 'ignored_pixels',
                    'num_images', 'ignore_index', 'reduce_zero_label')
    }
    return save_class_freq(
        os.fspath(path),
        stats['counts'],
        classes=stats['classes'],
        count_type='pixels',
        source=source,
        extra=extra)
