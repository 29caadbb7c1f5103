"""iNaturalist 2018 through its COCO-like JSON annotation files."""
from typing import List, Optional, Union

import numpy as np
from mmengine.fileio import LocalBackend, get_file_backend, get_local_path
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from mmdisalign.utils.misc import read_json_file
from .list_file import (SampleErrorMixin, check_no_empty_class, count_labels,
                        local_file_size)

__all__ = ['INaturalist2018']


@DATASETS.register_module()
class INaturalist2018(SampleErrorMixin, BaseDataset):
    """iNaturalist 2018 (``train2018.json`` / ``val2018.json``).

    The COCO-like annotation file: ``images`` (``id``, ``file_name``),
    ``annotations`` (one ``category_id`` per ``image_id``) and
    ``categories``; the class index is the category id, which must be
    ``0 .. K-1``. On load, an error names the file and the offending entry
    (missing key, id out of range, image without or with two annotations,
    missing local image, and for a training split a class with no image).

    Args:
        ann_file (str): The JSON annotation file.
        data_root (str): Root joined to ``ann_file`` and ``data_prefix``.
            Defaults to ''.
        data_prefix (str | dict): Image root, relative to ``data_root``.
            Defaults to ''.
        check_images (bool): Check that every image exists. Defaults to
            True.
        allow_empty_classes (bool, optional): Accept classes with no
            image. Defaults to None, meaning ``test_mode``.
        **kwargs: Other arguments of :class:`mmpretrain.datasets.BaseDataset`
            (``pipeline``, ``test_mode``, ``classes``, ``indices``...).
    """

    def __init__(self,
                 ann_file: str,
                 data_root: str = '',
                 data_prefix: Union[str, dict] = '',
                 check_images: bool = True,
                 allow_empty_classes: Optional[bool] = None,
                 **kwargs) -> None:
        self.check_images = check_images
        self.allow_empty_classes = allow_empty_classes
        self.class_counts: Optional[np.ndarray] = None
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=data_prefix,
            **kwargs)

    def _read_json(self) -> dict:
        with get_local_path(self.ann_file) as path:
            ann = read_json_file(path, 'iNaturalist annotation file')
        if not isinstance(ann, dict):
            raise ValueError(f'{self.ann_file}: expected a JSON object with '
                             '"images", "annotations" and "categories"')
        for key in ('images', 'annotations', 'categories'):
            if not isinstance(ann.get(key), list):
                raise ValueError(
                    f'{self.ann_file}: missing or non-list "{key}"')
        return ann

    def _entry(self, entry: dict, key: str, what: str, i: int):
        if not isinstance(entry, dict) or key not in entry:
            raise ValueError(
                f'{self.ann_file}: {what}[{i}] has no "{key}": {entry!r}')
        return entry[key]

    def _class_names(self, categories: List[dict]) -> List[str]:
        ids = [
            self._entry(c, 'id', 'categories', i)
            for i, c in enumerate(categories)
        ]
        num = len(categories)
        if sorted(ids) != list(range(num)):
            bad = sorted(set(ids) - set(range(num)))
            raise ValueError(
                f'{self.ann_file}: category ids must be 0..{num - 1} '
                f'(one per category), but got ids out of range or '
                f'repeated: {bad[:5] or "duplicates"}')
        names = [''] * num
        for c in categories:
            names[c['id']] = str(c.get('name', c['id']))
        return names

    def load_data_list(self) -> List[dict]:
        """``dict(img_path=..., gt_label=...)`` per image, checked."""
        ann = self._read_json()
        names = self._class_names(ann['categories'])
        given = self._metainfo.get('classes')
        if given is not None and len(given) != len(names):
            raise ValueError(f'{len(given)} class names were given but '
                             f'{self.ann_file} has {len(names)} categories')
        if given is None:
            self._metainfo['classes'] = tuple(names)
        num_classes = len(names)

        labels = {}
        for i, a in enumerate(ann['annotations']):
            img_id = self._entry(a, 'image_id', 'annotations', i)
            cat = self._entry(a, 'category_id', 'annotations', i)
            if not isinstance(cat, int) or not 0 <= cat < num_classes:
                raise ValueError(
                    f'{self.ann_file}: annotations[{i}] (image_id {img_id}) '
                    f'has category_id {cat!r}, out of range '
                    f'[0, {num_classes})')
            if img_id in labels:
                raise ValueError(
                    f'{self.ann_file}: annotations[{i}]: image_id {img_id} '
                    'has more than one annotation')
            labels[img_id] = cat

        backend = get_file_backend(self.img_prefix, enable_singleton=True)
        local = isinstance(backend, LocalBackend)
        data_list, seen = [], set()
        for i, img in enumerate(ann['images']):
            img_id = self._entry(img, 'id', 'images', i)
            name = self._entry(img, 'file_name', 'images', i)
            if img_id not in labels:
                raise ValueError(
                    f'{self.ann_file}: images[{i}] (id {img_id}, {name!r}) '
                    'has no annotation')
            path = backend.join_path(self.img_prefix, name)
            if self.check_images and local:
                size = local_file_size(path)
                if size is None:
                    raise FileNotFoundError(
                        f'{self.ann_file}: images[{i}] (id {img_id}): image '
                        f'{name!r} not found under {self.img_prefix!r}')
                if size == 0:
                    raise ValueError(
                        f'{self.ann_file}: images[{i}] (id {img_id}): image '
                        f'{name!r} under {self.img_prefix!r} is empty (0 '
                        'bytes)')
            seen.add(img_id)
            data_list.append(dict(img_path=path, gt_label=labels[img_id]))
        orphans = [k for k in labels if k not in seen]
        if orphans:
            raise ValueError(f'{self.ann_file}: annotations name image_id '
                             f'{orphans[0]!r}, which is not in "images"')

        self.class_counts = count_labels([d['gt_label'] for d in data_list],
                                         num_classes)
        allow_empty = (
            self.test_mode
            if self.allow_empty_classes is None else self.allow_empty_classes)
        if not allow_empty:
            check_no_empty_class(self.class_counts,
                                 f'annotation file {self.ann_file}',
                                 self._metainfo['classes'])
        return data_list
