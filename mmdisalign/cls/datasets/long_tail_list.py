"""One dataset class for ImageNet-LT, Places-LT and Fashion-MNIST-LT."""
from typing import List, Optional, Sequence, Union

import numpy as np
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.logging import MMLogger
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from .list_file import (SampleErrorMixin, check_no_empty_class, count_labels,
                        local_file_size, read_list_file)

__all__ = ['LongTailListDataset']


@DATASETS.register_module()
class LongTailListDataset(SampleErrorMixin, BaseDataset):
    """Images listed in a "relative/path label" file, checked on load.

    The split files of ImageNet-LT, Places-LT and Fashion-MNIST-LT; paths
    relative to ``data_prefix``. On load, an error names the file and line
    of a malformed line, a label out of range or a missing (local) image,
    and, for a training split, a class with no image. See docs/cls.md.

    Args:
        ann_file (str): The list file.
        data_root (str): Root joined to ``ann_file`` and ``data_prefix``.
            Defaults to ''.
        data_prefix (str | dict): Image root, relative to ``data_root``.
            Defaults to ''.
        num_classes (int, optional): The number of classes. Defaults to
            None: ``len(classes)`` when class names are given, else the
            largest label + 1 (then a trailing empty class cannot be seen).
        classes (str | Sequence[str], optional): Class names, or a file
            with one name per line. Defaults to None (names ``'0'``,
            ``'1'``, ...).
        check_images (bool): Check that every image exists. Defaults to
            True.
        allow_empty_classes (bool, optional): Accept classes with no
            image. Defaults to None, meaning ``test_mode``.
        **kwargs: Other arguments of :class:`mmpretrain.datasets.BaseDataset`
            (``pipeline``, ``test_mode``, ``indices``, ``metainfo``...).
    """

    def __init__(self,
                 ann_file: str,
                 data_root: str = '',
                 data_prefix: Union[str, dict] = '',
                 num_classes: Optional[int] = None,
                 classes: Union[str, Sequence[str], None] = None,
                 check_images: bool = True,
                 allow_empty_classes: Optional[bool] = None,
                 **kwargs) -> None:
        self.num_classes = num_classes
        self.check_images = check_images
        self.allow_empty_classes = allow_empty_classes
        self.class_counts: Optional[np.ndarray] = None
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=data_prefix,
            classes=classes,
            **kwargs)

    def _resolve_num_classes(self, labels: np.ndarray) -> int:
        names = self._metainfo.get('classes')
        if names is not None:
            if (self.num_classes is not None
                    and self.num_classes != len(names)):
                raise ValueError(
                    f'num_classes={self.num_classes} but {len(names)} class '
                    f'names were given for {self.ann_file}')
            return len(names)
        if self.num_classes is not None:
            return self.num_classes
        MMLogger.get_current_instance().warning(
            f'{self.ann_file}: neither num_classes nor classes given; '
            f'using largest label + 1 = {int(labels.max()) + 1}')
        return int(labels.max()) + 1

    def load_data_list(self) -> List[dict]:
        """``dict(img_path=..., gt_label=...)`` per sample, checked."""
        paths, labels, line_numbers = read_list_file(self.ann_file)
        num_classes = self._resolve_num_classes(labels)
        bad = np.flatnonzero(labels >= num_classes)
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f'{self.ann_file}, line {line_numbers[i]}: label '
                f'{int(labels[i])} is out of range [0, {num_classes}) for '
                f'{paths[i]!r}')
        given_names = self._metainfo.get('classes')
        if given_names is None:
            self._metainfo['classes'] = tuple(
                str(i) for i in range(num_classes))
        self.num_classes = num_classes

        backend = get_file_backend(self.img_prefix, enable_singleton=True)
        full_paths = [backend.join_path(self.img_prefix, p) for p in paths]
        if self.check_images and isinstance(backend, LocalBackend):
            sizes = [local_file_size(p) for p in full_paths]
            missing = [size is None for size in sizes]
            if any(missing):
                i = missing.index(True)
                raise FileNotFoundError(
                    f'{self.ann_file}, line {line_numbers[i]}: image '
                    f'{paths[i]!r} not found under {self.img_prefix!r} '
                    f'({sum(missing)} of {len(paths)} listed images are '
                    'missing)')
            if 0 in sizes:
                i = sizes.index(0)
                raise ValueError(
                    f'{self.ann_file}, line {line_numbers[i]}: image '
                    f'{paths[i]!r} under {self.img_prefix!r} is empty (0 '
                    f'bytes; {sizes.count(0)} of {len(paths)} listed images '
                    'are empty)')

        self.class_counts = count_labels(labels, num_classes)
        allow_empty = (
            self.test_mode
            if self.allow_empty_classes is None else self.allow_empty_classes)
        if not allow_empty:
            check_no_empty_class(self.class_counts,
                                 f'list file {self.ann_file}', given_names)
        return [
            dict(img_path=f, gt_label=int(y))
            for f, y in zip(full_paths, labels)
        ]
