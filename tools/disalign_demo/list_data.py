"""Long-tail list data sets for the experiment tools: check, never touch.

``tools/run_main_job.py`` and ``tools/compare_baselines.py`` run on any
data set in the layout :class:`mmdisalign.cls.LongTailListDataset` reads
(the layout Fashion-MNIST-LT is built in)::

    data_root/
        classes.txt             # one class name per line (K lines)
        <train list>            # "relative/path label", long-tailed
        <test list>             # "relative/path label"
        <image prefix>/...      # the listed images
        class_freq.json         # optional: training counts per class
        meta.json               # optional: "train_counts", "many_thr",
                                # "few_thr"

:func:`check_list_dataset` reads it without writing anything: every list
line parses, every label lies in ``[0, K)``, every listed image exists,
every class has a training image, and the counts of ``class_freq.json``
and ``meta.json`` (when there) are those of the training list. Anything
else is refused with an error naming the file and the fault.

:func:`resolve_thresholds` picks the many / medium / few thresholds: the
options, else ``many_thr`` / ``few_thr`` of ``meta.json``, else the preset
of the caller, else :func:`derive_thresholds` from the training counts.
"""
import json
import math
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    'DEFAULT_LAYOUT', 'check_list_dataset', 'derive_thresholds',
    'resolve_thresholds', 'group_sizes'
]

#: The file names of Fashion-MNIST-LT, the default layout of the tools.
DEFAULT_LAYOUT = dict(
    train_list='fashion_mnist_lt_train.txt',
    test_list='fashion_mnist_lt_test.txt',
    image_prefix='images')


class InvalidDataset(ValueError):
    """A data set the tools cannot use as it is (the message says why)."""


def _refuse(data_root: str, why: str) -> InvalidDataset:
    return InvalidDataset(
        f'{data_root} is not a usable long-tail list data set: '
        f'{why.rstrip(".")}. The '
        'tools use an existing data set as it is and never modify it: fix '
        'it, or give --data-root a new (or empty) directory to build '
        'Fashion-MNIST-LT there (see docs/cls.md, "Your own data set").')


def check_list_dataset(data_root: str,
                       train_list: str = DEFAULT_LAYOUT['train_list'],
                       test_list: str = DEFAULT_LAYOUT['test_list'],
                       image_prefix: str = DEFAULT_LAYOUT['image_prefix'],
                       val_list: Optional[str] = None) -> dict:
    """Check a long-tail list data set (read only); describe it.

    Args:
        data_root (str): The data set's directory.
        train_list (str): Training list, relative to ``data_root``.
        test_list (str): Test list, relative to ``data_root``.
        image_prefix (str): Image folder, relative to ``data_root``.
        val_list (str, optional): Validation list (for tuning), relative
            to ``data_root``: checked like the test list, and none of its
            images may be in the training or the test list. Defaults to
            None (not checked).

    Returns:
        dict: ``root``, ``train_list``, ``test_list``, ``image_prefix``,
        ``classes_file``, ``classes``, ``train_counts`` (list of int),
        ``num_test``, ``class_freq`` (the file's path, or None when the
        data set has none) and ``meta`` (``meta.json``, or None); with
        ``val_list``, also ``val_list`` and ``num_val``.

    Raises:
        InvalidDataset: A file is missing or disagrees with another; the
            message names the file and the fault.
    """
    from mmdisalign.cls.datasets import (check_no_empty_class, count_labels,
                                         read_list_file)
    from mmdisalign.utils.class_freq import load_class_freq_meta
    if not osp.isdir(data_root):
        raise _refuse(data_root, 'no such directory')
    classes_file = osp.join(data_root, 'classes.txt')
    if not osp.isfile(classes_file):
        raise _refuse(data_root, 'no classes.txt (one class name per line)')
    with open(classes_file, encoding='utf-8') as f:
        classes = [line.strip() for line in f if line.strip()]
    if len(classes) < 3:
        raise _refuse(
            data_root, f'classes.txt names {len(classes)} class(es); the '
            'many / medium / few evaluation needs at least 3')
    num_classes = len(classes)
    image_root = osp.join(data_root, image_prefix)
    counts = None
    num_test = 0
    images = {}
    splits = [('training', train_list), ('test', test_list)]
    if val_list is not None:
        splits.append(('validation', val_list))
    for split, name in splits:
        path = osp.join(data_root, name)
        if not osp.isfile(path) and split == 'validation':
            raise _refuse(
                data_root, f'the validation list {name} is missing (name '
                'another list with --val-list, or build Fashion-MNIST-LT '
                'with validation images: tools/dataset_converters/'
                'fashion_mnist_lt.py --val-per-class N)')
        if not osp.isfile(path):
            raise _refuse(data_root, f'the {split} list {name} is missing')
        try:
            rel_paths, labels, lines = read_list_file(path, num_classes)
        except ValueError as e:
            raise _refuse(data_root, str(e)) from None
        images[split] = set(osp.normpath(p) for p in rel_paths)
        for rel, line in zip(rel_paths, lines):
            if not osp.isfile(osp.join(image_root, rel)):
                raise _refuse(
                    data_root, f'{path}, line {line}: image {rel!r} not '
                    f'found under {image_root}')
        if split == 'training':
            counts = count_labels(labels, num_classes)
            try:
                check_no_empty_class(counts, f'list file {path}', classes)
            except ValueError as e:
                raise _refuse(data_root, str(e)) from None
        elif split == 'test':
            num_test = len(labels)
    if val_list is not None:
        for split, name in splits[:2]:
            shared = sorted(images['validation'] & images[split])
            if shared:
                raise _refuse(
                    data_root, f'{len(shared)} image(s) of the validation '
                    f'list {val_list} are also in the {split} list {name} '
                    f'(first: {shared[0]!r}): values tuned on it would be '
                    'chosen on ' +
                    ('training' if split == 'training' else 'test') +
                    ' images. Use a held-out list')
    train_counts = [int(c) for c in counts]

    class_freq = osp.join(data_root, 'class_freq.json')
    if osp.isfile(class_freq):
        try:
            freq = load_class_freq_meta(class_freq)
        except (ValueError, KeyError) as e:
            raise _refuse(data_root, str(e)) from None
        if [int(c) for c in freq['counts']] != train_counts:
            raise _refuse(
                data_root, f'{class_freq} holds the counts '
                f'{[int(c) for c in freq["counts"]]}, but {train_list} '
                f'has {train_counts} images per class')
        if freq.get('classes') is not None and list(
                freq['classes']) != classes:
            raise _refuse(
                data_root, f'the class names of {class_freq} are not those '
                'of classes.txt (or not in the same order)')
    else:
        class_freq = None

    meta_file = osp.join(data_root, 'meta.json')
    meta = None
    if osp.isfile(meta_file):
        try:
            with open(meta_file) as f:
                meta = json.load(f)
        except ValueError as e:
            raise _refuse(data_root, f'{meta_file} is not JSON: {e}') from None
        if not isinstance(meta, dict):
            raise _refuse(data_root, f'{meta_file} is not a JSON object')
        if 'train_counts' in meta and list(
                meta['train_counts']) != train_counts:
            raise _refuse(
                data_root, f'{meta_file} says {meta["train_counts"]} '
                f'training images per class, but {train_list} has '
                f'{train_counts}')
    return dict(
        root=data_root,
        train_list=train_list,
        test_list=test_list,
        image_prefix=image_prefix,
        classes_file=classes_file,
        classes=classes,
        train_counts=train_counts,
        num_test=num_test,
        class_freq=class_freq,
        meta=meta,
        **({} if val_list is None else dict(
            val_list=val_list, num_val=len(images['validation']))))


def _nice(value: float) -> float:
    """``value`` rounded to one significant digit."""
    if value <= 0:
        return value
    scale = 10**math.floor(math.log10(value))
    return round(value / scale) * scale


def derive_thresholds(train_counts: Sequence[int]) -> Tuple[float, float]:
    """Many / few thresholds that split the classes into thirds.

    The classes, sorted by training count, are split into three groups of
    ``K // 3`` classes, the remainder going to "many" first, then to
    "medium" (10 classes: 4 / 3 / 3). A threshold is the geometric mean of
    the counts on both sides of a split, rounded to one significant digit
    when the rounded value still separates them (Fashion-MNIST-LT, ratio
    100: counts 1292 | 774 and 278 | 166 give 1000 and 200, the
    thresholds of its configs). "many" is ``count > many_thr``, "few"
    ``count < few_thr``.

    Args:
        train_counts (Sequence[int]): Training images per class.

    Returns:
        tuple: ``(many_thr, few_thr)``.

    Raises:
        ValueError: Fewer than 3 classes, or equal counts across a split
            (no threshold separates the groups; give them as options).
    """
    counts = sorted((int(c) for c in train_counts), reverse=True)
    num = len(counts)
    if num < 3:
        raise ValueError(f'cannot split {num} class(es) into many / medium '
                         '/ few groups')
    size, rest = divmod(num, 3)
    num_many = size + (rest > 0)
    num_few = size
    thresholds = []
    for above, below in ((counts[num_many - 1], counts[num_many]),
                         (counts[num - num_few - 1], counts[num - num_few])):
        if above == below:
            raise ValueError(
                f'training counts {counts}: {above} images on both sides of '
                'a group boundary, no threshold separates the groups; give '
                '--many-threshold and --few-threshold')
        mean = math.sqrt(above * below)
        nice = _nice(mean)
        value = nice if below < nice < above else mean
        thresholds.append(float(value))
    many_thr, few_thr = thresholds
    # "few" is count < few_thr: the boundary count itself belongs above.
    return many_thr, few_thr


def group_sizes(train_counts: Sequence[int], many_thr: float,
                few_thr: float) -> List[int]:
    """Classes in the many / medium / few groups."""
    counts = np.asarray(train_counts)
    many = int((counts > many_thr).sum())
    few = int((counts < few_thr).sum())
    return [many, len(counts) - many - few, few]


def resolve_thresholds(
        train_counts: Sequence[int],
        many_thr: Optional[float] = None,
        few_thr: Optional[float] = None,
        meta: Optional[dict] = None,
        preset: Optional[Tuple[float,
                               float]] = None) -> Tuple[float, float, str]:
    """The many / few thresholds of a run, and where they come from.

    Each threshold is the option when given, else ``meta['many_thr']`` /
    ``meta['few_thr']`` (the data set's ``meta.json``), else ``preset``,
    else :func:`derive_thresholds` of the training counts.

    Args:
        train_counts (Sequence[int]): Training images per class.
        many_thr (float, optional): ``--many-threshold``.
        few_thr (float, optional): ``--few-threshold``.
        meta (dict, optional): The data set's ``meta.json``.
        preset (tuple, optional): ``(many_thr, few_thr)`` of the caller
            (the ``--quick`` set's 20 / 8).

    Returns:
        tuple: ``(many_thr, few_thr, source)``, ``source`` a short text.

    Raises:
        ValueError: ``few_thr > many_thr``, or a group without a class
            (names the thresholds and the counts).
    """
    meta = meta or {}
    derived = None
    values, sources = [], []
    for i, (option, key, flag) in enumerate(
        ((many_thr, 'many_thr', '--many-threshold'), (few_thr, 'few_thr',
                                                      '--few-threshold'))):
        if option is not None:
            values.append(float(option))
            sources.append(flag)
        elif meta.get(key) is not None:
            values.append(float(meta[key]))
            sources.append(f'meta.json {key}')
        elif preset is not None:
            values.append(float(preset[i]))
            sources.append('preset')
        else:
            if derived is None:
                derived = derive_thresholds(train_counts)
            values.append(derived[i])
            sources.append('derived from the training counts')
    many, few = values
    if few > many:
        raise ValueError(f'few threshold {few:g} ({sources[1]}) exceeds the '
                         f'many threshold {many:g} ({sources[0]})')
    sizes = group_sizes(train_counts, many, few)
    if 0 in sizes:
        empty = ('many', 'medium', 'few')[sizes.index(0)]
        raise ValueError(
            f'thresholds many > {many:g} ({sources[0]}), few < {few:g} '
            f'({sources[1]}) leave the {empty!r} group empty for the '
            f'training counts {sorted(train_counts, reverse=True)}; choose '
            '--many-threshold / --few-threshold between these counts')
    source = (
        sources[0]
        if sources[0] == sources[1] else f'{sources[0]} / {sources[1]}')
    return many, few, source
