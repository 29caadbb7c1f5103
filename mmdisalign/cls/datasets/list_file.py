"""Reading and checking "relative/path label" list files (ImageNet-LT,
Places-LT, Fashion-MNIST-LT); every error names the file and the line."""
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np

from mmdisalign.utils.misc import class_name, listed

__all__ = [
    'read_list_file', 'count_labels', 'list_file_class_counts',
    'check_no_empty_class', 'local_file_size', 'sample_error',
    'SampleErrorMixin'
]


def read_list_file(
    path: str,
    num_classes: Optional[int] = None
) -> Tuple[List[str], np.ndarray, List[int]]:
    """Parse a "relative/path label" list file.

    Blank lines are skipped. The path may contain spaces: the label is the
    last whitespace-separated field.

    Args:
        path (str): The list file.
        num_classes (int, optional): When given, every label must lie in
            ``[0, num_classes)``. Defaults to None (only ``>= 0`` checked).

    Returns:
        tuple: ``(paths, labels, line_numbers)``: the relative image paths,
        the labels as an int64 array and the 1-based line number of each
        sample in the file.

    Raises:
        ValueError: A line is malformed, a label is not an integer or lies
            outside ``[0, num_classes)``, or the file holds no sample.
    """
    paths, labels, line_numbers = [], [], []
    with open(path, encoding='utf-8') as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line:
                continue
            fields = line.rsplit(None, 1)
            if len(fields) != 2:
                raise ValueError(
                    f'{path}, line {lineno}: malformed line {line!r}; '
                    'expected "relative/path label"')
            rel_path, label_str = fields
            try:
                label = int(label_str)
            except ValueError:
                raise ValueError(
                    f'{path}, line {lineno}: label {label_str!r} is not an '
                    'integer') from None
            if label < 0 or (num_classes is not None and label >= num_classes):
                upper = '' if num_classes is None else f', {num_classes}'
                raise ValueError(
                    f'{path}, line {lineno}: label {label} is out of range '
                    f'[0{upper}) for {rel_path!r}')
            paths.append(rel_path)
            labels.append(label)
            line_numbers.append(lineno)
    if not paths:
        raise ValueError(f'list file {path} holds no sample')
    return paths, np.asarray(labels, dtype=np.int64), line_numbers


def count_labels(labels: Sequence[int], num_classes: int) -> np.ndarray:
    """Count the samples of each class.

    Args:
        labels (Sequence[int]): Class indices, all in ``[0, num_classes)``.
        num_classes (int): The number of classes K.

    Returns:
        np.ndarray: int64 array of shape (K,).
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise ValueError(
            f'label {int(bad)} is out of range [0, {num_classes})')
    return np.bincount(labels, minlength=num_classes).astype(np.int64)


def check_no_empty_class(counts: Sequence[int],
                         source: str,
                         classes: Optional[Sequence[str]] = None) -> None:
    """Raise if a class has no sample.

    Args:
        counts (Sequence[int]): Per-class sample counts.
        source (str): What the counts come from (named in the error).
        classes (Sequence[str], optional): Class names, named in the error.
            Defaults to None.

    Raises:
        ValueError: Some class has a zero count.
    """
    empty = [i for i, n in enumerate(counts) if n == 0]
    if not empty:
        return
    names = [class_name(i, classes) for i in empty]
    raise ValueError(
        f'{source}: {len(empty)} class(es) have zero training images: '
        f'{listed(names, 20)}. '
        'Every class needs at least one training image (class weights '
        'and many/medium/few groups are undefined otherwise).')


def list_file_class_counts(path: str,
                           num_classes: int,
                           classes: Optional[Sequence[str]] = None,
                           allow_empty: bool = False) -> np.ndarray:
    """Per-class image counts of a training list file.

    Args:
        path (str): The list file.
        num_classes (int): The number of classes K.
        classes (Sequence[str], optional): Class names for error messages.
            Defaults to None.
        allow_empty (bool): Accept classes with no image. Defaults to
            False.

    Returns:
        np.ndarray: int64 array of shape (K,).
    """
    _, labels, _ = read_list_file(path, num_classes)
    counts = count_labels(labels, num_classes)
    if not allow_empty:
        check_no_empty_class(counts, f'list file {path}', classes)
    return counts


def local_file_size(path: str) -> Optional[int]:
    """Size in bytes of a local regular file, None if there is none (one
    ``stat``, as ``os.path.isfile``)."""
    try:
        stat = os.stat(path)
    except (OSError, ValueError):
        return None
    return stat.st_size if (stat.st_mode & 0o170000) == 0o100000 else None


def sample_error(ann_file: str, idx: int, img_path: Optional[str],
                 err: Exception) -> Exception:
    """The error to raise when the pipeline fails on sample ``idx``.

    The loading transforms (mmcv / cv2) fail without naming the image (a
    0-byte file gives a bare ``cv2.error``); this names the annotation
    file, the sample and the image, and says when the image is empty.

    Args:
        ann_file (str): The dataset's annotation (list) file.
        idx (int): The sample index.
        img_path (str, optional): The sample's image.
        err (Exception): The error of the pipeline.

    Returns:
        Exception: A ``ValueError`` for an empty image, else a
        ``RuntimeError`` naming the image and the original error.
    """
    if img_path is not None and local_file_size(img_path) == 0:
        return ValueError(
            f'{ann_file}: image {img_path!r} of sample {idx} is empty (0 '
            'bytes); replace it or drop its entry')
    return RuntimeError(
        f'{ann_file}: the data pipeline failed on sample {idx}, image '
        f'{img_path!r} (a truncated or non-image file?): '
        f'{type(err).__name__}: {err}')


class SampleErrorMixin:
    """For a dataset class (before mmengine's ``BaseDataset`` in the
    bases): a pipeline failure on a sample (an image that cannot be
    decoded) raises :func:`sample_error`, naming the annotation file, the
    sample and the image."""

    def prepare_data(self, idx: int):
        """The pipeline's output for sample ``idx``."""
        try:
            return super().prepare_data(idx)
        except Exception as e:
            raise sample_error(self.ann_file, idx,
                               self.get_data_info(idx).get('img_path'),
                               e) from e
