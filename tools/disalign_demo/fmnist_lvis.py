"""A tiny long-tailed instance-segmentation set in LVIS format.

Real Fashion-MNIST objects are pasted onto small canvases: the layout is
synthetic, the objects are real. Training scenes use objects of the
Fashion-MNIST training split, validation scenes objects of the t10k split.
The training set is long-tailed over the 10 classes (an exponential
profile of instance counts, class 0 the most frequent); the validation
set has the same number of instances of every class.

Masks and boxes are exact: an object is resized (bilinear), its mask is the
set of pixels whose resized intensity reaches ``threshold``, and only those
pixels are written onto the canvas, whose background is noise strictly
below ``threshold``. Objects never overlap. So ``mask == (image >=
threshold)`` inside each box, the mask is stored losslessly as COCO RLE and
the box is the tight box of the mask. The annotation files follow LVIS v1
(``coco_url`` and ``file_name``, ``neg_category_ids`` = every category not
in the image since scenes are exhaustively annotated,
``not_exhaustive_category_ids`` empty; categories with ``image_count``,
``instance_count`` and ``frequency`` computed from the training file with
the LVIS thresholds), so mmdet's
``LVISV1Dataset``, ``LVISMetric`` and the ``lvis`` API read them.
"""
import json
import os
import os.path as osp
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from mmdisalign.det.lvis_stats import (LVIS_COMMON_MAX, LVIS_RARE_MAX,
                                       category_stats)
from .idx import (DEFAULT_FASHION_MNIST_DIR, FASHION_MNIST_CLASSES,
                  load_fashion_mnist)
from .out_dir import claim_out_dir

__all__ = [
    'FMNIST_LVIS_TRAIN', 'FMNIST_LVIS_VAL', 'long_tail_instance_counts',
    'build_fmnist_lvis'
]

#: Annotation files, relative to the output folder.
FMNIST_LVIS_TRAIN = 'annotations/lvis_fmnist_train.json'
FMNIST_LVIS_VAL = 'annotations/lvis_fmnist_val.json'


def long_tail_instance_counts(n_max: int, num_classes: int,
                              imbalance_ratio: float) -> List[int]:
    """Instances per class: ``n_i = round(n_max * ratio ** (-i / (K-1)))``.

    Args:
        n_max (int): Instances of class 0.
        num_classes (int): K.
        imbalance_ratio (float): ``n_0 / n_{K-1}``, >= 1.

    Returns:
        list[int]: At least 1 per class.
    """
    if n_max < 1 or num_classes < 1 or imbalance_ratio < 1:
        raise ValueError(f'need n_max >= 1, num_classes >= 1 and '
                         f'imbalance_ratio >= 1, got {n_max}, {num_classes}, '
                         f'{imbalance_ratio}')
    if num_classes == 1:
        return [int(n_max)]
    return [
        max(1, int(round(n_max * imbalance_ratio**(-i / (num_classes - 1)))))
        for i in range(num_classes)
    ]


def _load_split(fmnist_dir: str, split: str) -> Tuple[np.ndarray, np.ndarray]:
    """Images and labels of the Fashion-MNIST training (``'train'``) or
    t10k (``'val'``) split."""
    return load_fashion_mnist(fmnist_dir,
                              'train' if split == 'train' else 'test')


def _rle(mask: np.ndarray) -> dict:
    import pycocotools.mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    return rle


def _tight_box(mask: np.ndarray) -> List[int]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    x0, y0 = int(cols[0]), int(rows[0])
    return [x0, y0, int(cols[-1]) - x0 + 1, int(rows[-1]) - y0 + 1]


def _place(rng: np.random.Generator,
           size: int,
           canvas: int,
           taken: List[Tuple[int, int, int, int]],
           tries: int = 50) -> Optional[Tuple[int, int]]:
    """Top-left corner of a ``size`` square that overlaps no taken box."""
    for _ in range(tries):
        x, y = (int(v) for v in rng.integers(0, canvas - size + 1, size=2))
        if all(x + size <= tx or tx + ts <= x or y + size <= ty or ty + ts <= y
               for tx, ty, ts, _ in taken):
            return x, y
    return None


class _Layout(NamedTuple):
    """How scenes are drawn (see :func:`build_fmnist_lvis`)."""
    img_size: int
    objects_per_image: Tuple[int, int]
    object_size: Tuple[int, int]
    threshold: int


def _render_split(out_dir: str, split: str, labels: Sequence[int],
                  sources: np.ndarray, rng: np.random.Generator,
                  layout: _Layout, first_ann_id: int) -> Tuple[list, list]:
    """Paste objects (``labels[i]`` from ``sources[i]``) into scenes."""
    os.makedirs(osp.join(out_dir, split), exist_ok=True)
    images, annotations = [], []
    queue = list(range(len(labels)))
    ann_id = first_ann_id
    while queue:
        k = int(
            rng.integers(layout.objects_per_image[0],
                         layout.objects_per_image[1] + 1))
        canvas = rng.integers(
            0, layout.threshold, size=(layout.img_size, ) * 2)
        canvas = canvas.astype(np.uint8)
        taken, masks = [], []
        for index in list(queue[:k]):
            size = int(
                rng.integers(layout.object_size[0], layout.object_size[1] + 1))
            corner = _place(rng, size, layout.img_size, taken)
            if corner is None:
                break  # the scene is full: next object, next scene
            queue.remove(index)
            x, y = corner
            obj = Image.fromarray(sources[index]).resize((size, size),
                                                         Image.BILINEAR)
            obj = np.asarray(obj)
            mask = obj >= layout.threshold
            if not mask.any():
                continue  # an all-dark source object: no instance
            region = canvas[y:y + size, x:x + size]
            region[mask] = obj[mask]
            full = np.zeros((layout.img_size, ) * 2, dtype=bool)
            full[y:y + size, x:x + size] = mask
            taken.append((x, y, size, index))
            masks.append((labels[index], full))
        image_id = len(images) + 1
        file_name = f'{split}/{image_id:06d}.png'
        Image.fromarray(np.stack([canvas] * 3,
                                 axis=-1)).save(osp.join(out_dir, file_name))
        present = set()
        for label, full in masks:
            cat_id = int(label) + 1
            present.add(cat_id)
            annotations.append(
                dict(
                    id=ann_id,
                    image_id=image_id,
                    category_id=cat_id,
                    bbox=_tight_box(full),
                    area=int(full.sum()),
                    segmentation=_rle(full),
                    iscrowd=0))
            ann_id += 1
        images.append(
            dict(
                id=image_id,
                width=layout.img_size,
                height=layout.img_size,
                file_name=file_name,
                coco_url=file_name,
                present=sorted(present)))
    return images, annotations


def _finish_images(images: list, num_classes: int) -> None:
    all_ids = set(range(1, num_classes + 1))
    for image in images:
        present = set(image.pop('present'))
        image['neg_category_ids'] = sorted(all_ids - present)
        image['not_exhaustive_category_ids'] = []


def build_fmnist_lvis(out_dir: str,
                      fmnist_dir: str = DEFAULT_FASHION_MNIST_DIR,
                      n_max: int = 200,
                      imbalance_ratio: float = 50.,
                      val_per_class: int = 10,
                      img_size: int = 128,
                      objects_per_image: Tuple[int, int] = (1, 3),
                      object_size: Tuple[int, int] = (28, 56),
                      threshold: int = 40,
                      seed: int = 0,
                      classes: Optional[Sequence[str]] = None) -> Dict:
    """Write the scenes and the two LVIS v1-format annotation files.

    Args:
        out_dir (str): Output folder: ``train/``, ``val/`` (PNG images) and
            ``annotations/lvis_fmnist_{train,val}.json``.
        fmnist_dir (str): Folder with the gzipped Fashion-MNIST IDX files.
            Defaults to the Debian package's folder.
        n_max (int): Training instances of class 0. Defaults to 200.
        imbalance_ratio (float): Instances of class 0 over those of class
            9. Defaults to 50.
        val_per_class (int): Validation instances per class. Defaults to 10.
        img_size (int): Side of the square canvases. Defaults to 128.
        objects_per_image (tuple[int, int]): Min and max objects per scene.
            Defaults to (1, 3).
        object_size (tuple[int, int]): Min and max side of a pasted object
            (the 28x28 source is resized). Defaults to (28, 56).
        threshold (int): Intensity from which a pixel belongs to the object
            (background noise stays below it). Defaults to 40.
        seed (int): Seed of every random choice. Defaults to 0.
        classes (Sequence[str], optional): Category names. Defaults to the
            Fashion-MNIST class names.

    A source object whose resized mask would be empty is dropped (none is
    with the defaults; the tests check the exact instance counts).

    Returns:
        dict: ``train`` and ``val`` annotation file paths and the training
        ``stats`` (:func:`mmdisalign.det.lvis_stats.category_stats`).

    Raises:
        FileExistsError: ``out_dir`` holds other data or a build of other
            arguments (:func:`out_dir.claim_out_dir`); nothing is written.
    """
    if not 1 <= objects_per_image[0] <= objects_per_image[1]:
        raise ValueError(f'objects_per_image must be (min, max) with 1 <= '
                         f'min <= max, got {objects_per_image}')
    if not 1 <= object_size[0] <= object_size[1] <= img_size:
        raise ValueError(f'object_size must be (min, max) with 1 <= min <= '
                         f'max <= img_size={img_size}, got {object_size}')
    if not 1 <= threshold <= 255:
        raise ValueError(f'threshold must be in [1, 255], got {threshold}')
    if classes is None:
        classes = FASHION_MNIST_CLASSES
    num_classes = len(classes)
    layout = _Layout(img_size, tuple(objects_per_image), tuple(object_size),
                     threshold)
    rng = np.random.default_rng(seed)
    counts = {
        'train': long_tail_instance_counts(n_max, num_classes,
                                           imbalance_ratio),
        'val': [val_per_class] * num_classes
    }
    claim_out_dir(
        out_dir, 'fmnist_lvis',
        dict(
            fmnist_dir=osp.abspath(fmnist_dir),
            n_max=n_max,
            imbalance_ratio=float(imbalance_ratio),
            val_per_class=val_per_class,
            img_size=img_size,
            objects_per_image=list(objects_per_image),
            object_size=list(object_size),
            threshold=threshold,
            seed=seed,
            classes=[str(c) for c in classes]))
    files, data = {}, {}
    ann_id = 1
    for split in ('train', 'val'):
        images_src, labels_src = _load_split(fmnist_dir, split)
        labels, picked = [], []
        for c, n in enumerate(counts[split]):
            pool = np.flatnonzero(labels_src == c)
            if pool.size < n:
                raise ValueError(
                    f'Fashion-MNIST {split} split has {pool.size} images of '
                    f'class {c}, fewer than the {n} requested')
            picked.extend(rng.choice(pool, size=n, replace=False).tolist())
            labels.extend([c] * n)
        order = rng.permutation(len(labels))
        labels = [labels[i] for i in order]
        sources = images_src[np.asarray(picked)[order]]
        images, anns = _render_split(out_dir, split, labels, sources, rng,
                                     layout, ann_id)
        ann_id += len(anns)
        _finish_images(images, num_classes)
        data[split] = dict(
            info=dict(
                description='Fashion-MNIST objects pasted on noise canvases '
                f'(synthetic layout), {split} split, seed {seed}'),
            images=images,
            annotations=anns,
            categories=[
                dict(id=c + 1, name=str(name), synonyms=[str(name)])
                for c, name in enumerate(classes)
            ])

    stats = category_stats(data['train'])
    for split in ('train', 'val'):
        for cat, images, instances, freq in zip(data[split]['categories'],
                                                stats['image_count'],
                                                stats['instance_count'],
                                                stats['frequency']):
            cat.update(
                image_count=images, instance_count=instances, frequency=freq)
        path = osp.join(
            out_dir,
            FMNIST_LVIS_TRAIN if split == 'train' else FMNIST_LVIS_VAL)
        os.makedirs(osp.dirname(path), exist_ok=True)
        with open(path, 'w', encoding='utf-8') as file:
            json.dump(data[split], file)
        files[split] = path
    return dict(
        train=files['train'],
        val=files['val'],
        stats=stats,
        thresholds=dict(rare_max=LVIS_RARE_MAX, common_max=LVIS_COMMON_MAX))
