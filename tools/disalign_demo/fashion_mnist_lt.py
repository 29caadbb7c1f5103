"""Build Fashion-MNIST-LT: a long-tailed Fashion-MNIST in list-file format.

The training split keeps ``n_i = n_max * (1 / ratio) ** (i / (K - 1))``
images of class ``i`` (an exponential profile, class 0 the most frequent),
drawn with a seeded generator; the test split is the balanced t10k set.
Images are written as PNG files and listed in the ImageNet-LT format
("relative/path label"), so :class:`LongTailListDataset` reads all splits.
Optionally, a balanced validation split (``val_per_class`` images per
class, disjoint from the training images) is drawn from the unused training
images, for tuning without touching the test split; ``n_max`` then shrinks
by ``val_per_class`` (Fashion-MNIST has exactly 6000 images per class).

Only numpy and PIL are needed; building all splits takes seconds.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
from PIL import Image

from mmdisalign.utils.class_freq import save_class_freq
# The IDX reader and the Fashion-MNIST constants are shared with the scene
# builders; they stay importable from here.
from .idx import (DEFAULT_FASHION_MNIST_DIR, FASHION_MNIST_CLASSES, IDX_FILES,
                  read_idx)
from .out_dir import describe_differences

__all__ = [
    'FASHION_MNIST_CLASSES', 'DEFAULT_FASHION_MNIST_DIR', 'read_idx',
    'long_tail_counts', 'sample_long_tail', 'build_fashion_mnist_lt',
    'is_built'
]

LIST_NAMES = dict(
    train='fashion_mnist_lt_train.txt',
    val='fashion_mnist_lt_val.txt',
    test='fashion_mnist_lt_test.txt')
META_NAME = 'meta.json'
#: Written first and removed last: an unfinished build of these arguments.
BUILDING_NAME = '.building.json'
FORMAT_VERSION = 1


def long_tail_counts(n_max: int, num_classes: int, ratio: float) -> List[int]:
    """Exponential long-tail profile ``n_max * (1/ratio)**(i/(K-1))``.

    Counts are rounded down (a tiny tolerance absorbs float error, so
    ``n_max=6000, ratio=100`` ends exactly at 60).

    Args:
        n_max (int): Images of the most frequent class (class 0).
        num_classes (int): The number of classes K.
        ratio (float): Imbalance ratio n_0 / n_{K-1}, at least 1.

    Returns:
        list[int]: K counts, non-increasing.
    """
    if ratio < 1:
        raise ValueError(f'imbalance ratio must be >= 1, got {ratio}')
    if n_max < 1 or num_classes < 1:
        raise ValueError(f'need n_max >= 1 and num_classes >= 1, got '
                         f'{n_max} and {num_classes}')
    if num_classes == 1:
        return [int(n_max)]
    counts = []
    for i in range(num_classes):
        n = n_max * (1.0 / ratio)**(i / (num_classes - 1))
        counts.append(max(1, int(np.floor(n + 1e-6))))
    return counts


def sample_long_tail(labels: np.ndarray,
                     counts: Sequence[int],
                     seed: int = 0,
                     val_per_class: int = 0) -> Dict[str, np.ndarray]:
    """Draw a long-tailed subset (and a disjoint balanced one) per class.

    For each class a seeded permutation of its indices is drawn; the
    training subset is its first ``counts[i]`` entries (so a smaller ratio
    with the same seed gives nested subsets) and the validation subset its
    last ``val_per_class`` entries (the same for every ratio).

    Args:
        labels (np.ndarray): Labels of the source split, shape (N,).
        counts (Sequence[int]): Images to keep per class.
        seed (int): Seed of the generator. Defaults to 0.
        val_per_class (int): Images per class for validation. Defaults to
            0.

    Returns:
        dict: ``train`` and ``val`` index arrays into ``labels`` (sorted).
    """
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c, n in enumerate(counts):
        idx = np.flatnonzero(labels == c)
        if n + val_per_class > idx.size:
            raise ValueError(
                f'class {c} has {idx.size} source images, fewer than the '
                f'{n} training + {val_per_class} validation images asked')
        perm = rng.permutation(idx)
        train.append(np.sort(perm[:n]))
        if val_per_class:
            val.append(np.sort(perm[idx.size - val_per_class:]))
    empty = np.zeros(0, np.int64)
    return dict(
        train=np.concatenate(train) if train else empty,
        val=np.concatenate(val) if val else empty)


def _write_split(out_dir: str, split: str, src_split: str, images: np.ndarray,
                 labels: np.ndarray, indices: np.ndarray) -> None:
    """Write PNGs of ``indices`` and the list file of ``split``."""
    lines = []
    for i in indices:
        label = int(labels[i])
        rel = f'{src_split}/{label}/{src_split}_{int(i):05d}.png'
        full = osp.join(out_dir, 'images', rel)
        os.makedirs(osp.dirname(full), exist_ok=True)
        Image.fromarray(images[i]).save(full, compress_level=1)
        lines.append(f'{rel} {label}\n')
    with open(osp.join(out_dir, LIST_NAMES[split]), 'w') as f:
        f.writelines(lines)


def _build_args(ratio, seed, max_per_class, val_per_class, test_per_class,
                sources) -> dict:
    return dict(
        format_version=FORMAT_VERSION,
        ratio=float(ratio),
        seed=int(seed),
        max_per_class=max_per_class,
        val_per_class=int(val_per_class),
        test_per_class=test_per_class,
        sources={
            k: osp.abspath(v)
            for k, v in sources.items()
        })


def _sources(src_dir: str, paths: Optional[dict]) -> dict:
    sources = {k: osp.join(src_dir, v) for k, v in IDX_FILES.items()}
    for key, value in (paths or {}).items():
        if key not in IDX_FILES:
            raise KeyError(f'unknown IDX file key {key!r}; expected one of '
                           f'{sorted(IDX_FILES)}')
        if value:
            sources[key] = value
    return sources


def _claim_out_dir(out_dir: str, args: dict) -> bool:
    """Make ``out_dir`` this build's, or refuse to touch it.

    A directory that is missing or empty is created and marked with
    ``BUILDING_NAME`` (the build's arguments) until ``meta.json`` is
    written. A finished build with the same arguments is left as it is
    (returns True). An unfinished build with the same arguments (its marker
    is there) is completed over. Anything else (a build with other
    arguments, or files this builder did not write) is refused: nothing is
    deleted or overwritten.

    Returns:
        bool: Whether ``out_dir`` already holds this very build.

    Raises:
        FileExistsError: ``out_dir`` holds other data (the message says
            what and how to proceed).
    """
    meta_path = osp.join(out_dir, META_NAME)
    marker = osp.join(out_dir, BUILDING_NAME)
    hint = ('nothing was written; build into a new (or empty) directory, '
            'or remove this one yourself if it is no longer needed')
    if osp.isfile(meta_path):
        with open(meta_path) as f:
            try:
                found = json.load(f).get('args')
            except (ValueError, AttributeError):
                found = None
        if found == args and not osp.isfile(marker):
            return True
        if found is not None and isinstance(found, dict):
            changes = describe_differences(found, args)
            raise FileExistsError(
                f'{out_dir} holds a Fashion-MNIST-LT build with other '
                f'options ({changes}); {hint}')
        raise FileExistsError(
            f'{out_dir} holds a {META_NAME} that this builder did not '
            f'write; {hint}')
    if osp.isfile(marker):
        with open(marker) as f:
            try:
                found = json.load(f)
            except ValueError:
                found = None
        if found != args:
            raise FileExistsError(
                f'{out_dir} holds an unfinished Fashion-MNIST-LT build with '
                f'other options ({BUILDING_NAME}: {found!r}); {hint}')
    elif osp.isdir(out_dir) and os.listdir(out_dir):
        entries = sorted(os.listdir(out_dir))
        raise FileExistsError(
            f'{out_dir} is not empty and holds no Fashion-MNIST-LT build of '
            f'this builder ({len(entries)} entries, e.g. {entries[0]!r}); '
            f'{hint}')
    os.makedirs(out_dir, exist_ok=True)
    with open(marker, 'w') as f:
        json.dump(args, f)
    return False


def is_built(out_dir: str,
             ratio: float = 100,
             seed: int = 0,
             max_per_class: Optional[int] = None,
             val_per_class: int = 0,
             test_per_class: Optional[int] = None,
             src_dir: str = DEFAULT_FASHION_MNIST_DIR,
             paths: Optional[dict] = None) -> bool:
    """Whether ``out_dir`` already holds a build with these arguments."""
    meta_path = osp.join(out_dir, META_NAME)
    if not osp.isfile(meta_path):
        return False
    with open(meta_path) as f:
        meta = json.load(f)
    args = _build_args(ratio, seed, max_per_class, val_per_class,
                       test_per_class, _sources(src_dir, paths))
    splits = ['train', 'test'] + (['val'] if val_per_class else [])
    return (meta.get('args') == args
            and not osp.isfile(osp.join(out_dir, BUILDING_NAME)) and all(
                osp.isfile(osp.join(out_dir, LIST_NAMES[s])) for s in splits))


def build_fashion_mnist_lt(out_dir: str,
                           ratio: float = 100,
                           seed: int = 0,
                           max_per_class: Optional[int] = None,
                           val_per_class: int = 0,
                           test_per_class: Optional[int] = None,
                           src_dir: str = DEFAULT_FASHION_MNIST_DIR,
                           paths: Optional[dict] = None) -> dict:
    """Build Fashion-MNIST-LT under ``out_dir`` (new or empty).

    Layout written::

        out_dir/
            images/train/<label>/train_<index>.png
            images/test/<label>/test_<index>.png
            fashion_mnist_lt_train.txt   # long-tailed, "rel/path label"
            fashion_mnist_lt_val.txt     # only if val_per_class > 0
            fashion_mnist_lt_test.txt    # balanced t10k
            classes.txt                  # one class name per line
            class_freq.json              # per-class training image counts
            meta.json                    # build arguments and counts

    Args:
        out_dir (str): Output directory.
        ratio (float): Imbalance ratio n_max / n_min. Defaults to 100.
        seed (int): Sampling seed. Defaults to 0.
        max_per_class (int, optional): n_max, images of class 0. Defaults
            to None: the smallest per-class count of the source minus
            ``val_per_class`` (6000 for Fashion-MNIST without validation).
        val_per_class (int): Balanced validation images per class, drawn
            from the unused training images. Defaults to 0 (no split).
        test_per_class (int, optional): Keep only this many test images
            per class (seeded); None keeps all. Defaults to None.
        src_dir (str): Directory of the four IDX files. Defaults to the
            Debian package's directory.
        paths (dict, optional): Override single IDX files, keys
            ``train_images``, ``train_labels``, ``test_images``,
            ``test_labels``. Defaults to None.

    Returns:
        dict: The metadata written to ``meta.json`` (arguments, counts);
        the one there when ``out_dir`` holds this build already.

    Raises:
        FileExistsError: ``out_dir`` holds a build with other arguments or
            files this builder did not write: nothing is deleted or
            overwritten (see :func:`_claim_out_dir`).
    """
    sources = _sources(src_dir, paths)
    train_images = read_idx(sources['train_images'])
    train_labels = read_idx(sources['train_labels'])
    test_images = read_idx(sources['test_images'])
    test_labels = read_idx(sources['test_labels'])
    for name, imgs, lbls in (('train', train_images, train_labels),
                             ('test', test_images, test_labels)):
        if imgs.ndim != 3 or len(imgs) != len(lbls):
            raise ValueError(
                f'{name} IDX files disagree: images {imgs.shape}, labels '
                f'{lbls.shape}')
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    classes = (
        FASHION_MNIST_CLASSES if num_classes == len(FASHION_MNIST_CLASSES) else
        tuple(str(i) for i in range(num_classes)))
    available = np.bincount(train_labels, minlength=num_classes)
    n_max = (
        int(available.min()) -
        val_per_class if max_per_class is None else int(max_per_class))
    counts = long_tail_counts(n_max, num_classes, ratio)
    picked = sample_long_tail(train_labels, counts, seed, val_per_class)
    if num_classes > 1 and n_max / ratio < 1 - 1e-6:
        raise ValueError(
            f'ratio {ratio:g} with {n_max} images in the largest class asks '
            f'for {n_max / ratio:.3g} image(s) in the smallest: counts would '
            f'be clamped to 1 and the real ratio would be '
            f'{counts[0] / counts[-1]:g} ({counts[0]} / {counts[-1]}), not '
            f'{ratio:g}. Use a ratio (--ratio) of at most {n_max} or at '
            f'least {int(np.ceil(ratio - 1e-6))} images in the largest class '
            '(--max-per-class)')
    if test_per_class is None:
        test_idx = np.arange(len(test_labels))
    else:
        test_idx = sample_long_tail(test_labels,
                                    [int(test_per_class)] * num_classes,
                                    seed + 1)['train']

    build_args = _build_args(ratio, seed, max_per_class, val_per_class,
                             test_per_class, sources)
    meta_path = osp.join(out_dir, META_NAME)
    if _claim_out_dir(out_dir, build_args):
        with open(meta_path) as f:
            return json.load(f)  # built with these options: nothing to do
    _write_split(out_dir, 'train', 'train', train_images, train_labels,
                 picked['train'])
    if val_per_class:
        _write_split(out_dir, 'val', 'train', train_images, train_labels,
                     picked['val'])
    _write_split(out_dir, 'test', 'test', test_images, test_labels, test_idx)
    with open(osp.join(out_dir, 'classes.txt'), 'w') as f:
        f.writelines(f'{c}\n' for c in classes)
    save_class_freq(
        osp.join(out_dir, 'class_freq.json'),
        counts,
        classes=list(classes),
        count_type='images',
        source=LIST_NAMES['train'])
    meta = dict(
        args=build_args,
        num_classes=num_classes,
        classes=list(classes),
        train_counts=[int(c) for c in counts],
        num_val=int(picked['val'].size),
        num_test=int(test_idx.size))
    with open(meta_path, 'w') as f:
        json.dump(meta, f, indent=2)
    os.remove(osp.join(out_dir, BUILDING_NAME))  # this build's own marker
    return meta
