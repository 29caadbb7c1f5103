"""Build Fashion-MNIST scenes: a tiny long-tailed segmentation set.

Real Fashion-MNIST objects are pasted onto small canvases and written in
mmseg's ADE20K layout::

    OUT/images/training/000000.jpg       OUT/annotations/training/000000.png
    OUT/images/validation/000000.jpg     OUT/annotations/validation/000000.png
    OUT/meta.json

Annotation value 0 is "other" (the canvas) and class ``c`` of
Fashion-MNIST is stored as ``c + 1``, so, as for ADE20K, the dataset is read
with ``reduce_zero_label=True`` (0 becomes the ignore index 255, classes
become 0..9). Training scenes use objects of the Fashion-MNIST training
split, validation scenes objects of the t10k split. The class of each
object follows a long-tailed prior ``p_c ~ imbalance ** (-c / (K - 1))``
(class 0 the most frequent; defaults: imbalance 50, objects scaled 1.5 or
2, 3000 training scenes, which a tiny model can learn on a CPU).
Everything is drawn from one seeded generator: the same
arguments give the same files.

Example::

    python tools/dataset_converters/fmnist_ade_scenes.py data/fmnist_scenes
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

sys.path.append(osp.dirname(osp.dirname(osp.abspath(__file__))))  # tools/
from disalign_demo.idx import (DEFAULT_FASHION_MNIST_DIR,
                               FASHION_MNIST_CLASSES, IDX_FILES,
                               load_fashion_mnist)
from disalign_demo.out_dir import claim_out_dir

#: The Fashion-MNIST split of the objects of each scene split.
SPLITS = dict(training='train', validation='test')
META_NAME = 'meta.json'
FORMAT_VERSION = 1
#: Object pixels brighter than this are the object's mask.
MASK_THRESHOLD = 40


def class_prior(num_classes: int, imbalance: float) -> np.ndarray:
    """Long-tailed class prior ``p_c ~ imbalance ** (-c / (K - 1))``.

    Args:
        num_classes (int): K.
        imbalance (float): p_0 / p_{K-1}, at least 1.

    Returns:
        np.ndarray: float64 probabilities summing to 1.
    """
    if not imbalance >= 1:
        raise ValueError(f'imbalance must be >= 1, got {imbalance}')
    if num_classes == 1:
        return np.ones(1)
    exponents = np.arange(num_classes) / (num_classes - 1)
    prior = float(imbalance)**(-exponents)
    return prior / prior.sum()


def draw_object_classes(rng: np.random.Generator, num_scenes: int,
                        objects_per_scene: Tuple[int, int], prior: np.ndarray,
                        ensure_all_classes: bool) -> List[List[int]]:
    """Classes of the objects of every scene (in pasting order).

    With ``ensure_all_classes``, each class missing from the draw replaces
    the LAST object (pasted on top, never occluded) of a distinct random
    scene, so every class has visible pixels.
    """
    low, high = objects_per_scene
    if not 1 <= low <= high:
        raise ValueError('objects_per_scene must be (low, high) with '
                         f'1 <= low <= high, got {objects_per_scene}')
    sizes = rng.integers(low, high + 1, size=num_scenes)
    flat = rng.choice(len(prior), size=int(sizes.sum()), p=prior)
    scenes = np.split(flat, np.cumsum(sizes)[:-1])
    scenes = [scene.tolist() for scene in scenes]
    if ensure_all_classes:
        missing = sorted(set(range(len(prior))) - set(flat.tolist()))
        if len(missing) > num_scenes:
            raise ValueError(
                f'{num_scenes} scenes cannot hold the {len(missing)} classes '
                'the long-tailed draw missed; build more scenes')
        targets = rng.choice(num_scenes, size=len(missing), replace=False)
        for cls, scene in zip(missing, targets):
            scenes[scene][-1] = cls
    return scenes


def render_scene(rng: np.random.Generator, classes: Sequence[int],
                 images: np.ndarray, pools: Dict[int, np.ndarray], canvas: int,
                 scales: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
    """Paste one object per class of ``classes`` onto a noisy canvas.

    Returns:
        tuple: RGB image ``(canvas, canvas, 3)`` uint8 and annotation
        ``(canvas, canvas)`` uint8 (0 other, class + 1 elsewhere).
    """
    background = rng.integers(0, 90, size=3)
    noise = rng.normal(0, 8, size=(canvas, canvas, 3))
    image = np.clip(background + noise, 0, 255)
    label = np.zeros((canvas, canvas), np.uint8)
    for cls in classes:
        obj = images[rng.choice(pools[cls])]
        size = int(round(obj.shape[0] * float(rng.choice(scales))))
        size = min(size, canvas)
        if size != obj.shape[0]:
            obj = np.asarray(
                Image.fromarray(obj).resize((size, size), Image.BILINEAR))
        mask = obj > MASK_THRESHOLD
        top, left = rng.integers(0, canvas - size + 1, size=2)
        tint = rng.uniform(0.55, 1.0, size=3)
        patch = image[top:top + size, left:left + size]
        patch[mask] = obj[mask, None] * tint
        label[top:top + size, left:left + size][mask] = cls + 1
    return image.astype(np.uint8), label


def build_fmnist_scenes(out_dir: str,
                        fmnist_dir: Optional[str] = None,
                        num_train: int = 3000,
                        num_val: int = 500,
                        canvas: int = 64,
                        objects_per_scene: Tuple[int, int] = (1, 3),
                        scales: Sequence[float] = (1.5, 2.0),
                        imbalance: float = 50.0,
                        balanced_val: bool = False,
                        ensure_all_classes: bool = True,
                        seed: int = 0) -> dict:
    """Write the scenes and ``meta.json``; see the module docstring.

    Args:
        out_dir (str): Output folder (the dataset's ``data_root``).
        fmnist_dir (str, optional): Folder of the Fashion-MNIST IDX files.
            Defaults to the Debian package's folder.
        num_train (int): Training scenes. Defaults to 3000.
        num_val (int): Validation scenes. Defaults to 500.
        canvas (int): Side of the square canvas in pixels. Defaults to 64.
        objects_per_scene (tuple[int, int]): Inclusive range of the number
            of objects per scene. Defaults to (1, 3).
        scales (Sequence[float]): Object scales (28 px times the scale),
            drawn uniformly. Defaults to (1.5, 2.0).
        imbalance (float): Ratio of the most to the least likely class.
            Defaults to 50.
        balanced_val (bool): Draw the validation classes uniformly instead
            of from the long-tailed prior. Defaults to False.
        ensure_all_classes (bool): Make every class visible in every split.
            Defaults to True.
        seed (int): Seed of the generator. Defaults to 0.

    Returns:
        dict: The content of ``meta.json``.

    Raises:
        FileExistsError: ``out_dir`` holds other data or a build of other
            arguments; nothing is written or deleted.
    """
    class_names = FASHION_MNIST_CLASSES
    fmnist_dir = fmnist_dir or DEFAULT_FASHION_MNIST_DIR
    if not canvas >= 28:
        raise ValueError(f'canvas must be at least 28 px, got {canvas}')
    if any(not 0 < float(s) or 28 * float(s) > canvas for s in scales):
        raise ValueError(f'scales {tuple(scales)} must be > 0 and fit '
                         f'28 * scale into the {canvas}-px canvas')
    num_classes = len(class_names)
    rng = np.random.default_rng(seed)
    prior = class_prior(num_classes, imbalance)
    meta = dict(
        format='mmdisalign.fmnist_scenes',
        version=FORMAT_VERSION,
        classes=list(class_names),
        label_offset=1,
        reduce_zero_label=True,
        canvas=canvas,
        objects_per_scene=list(objects_per_scene),
        scales=[float(s) for s in scales],
        imbalance=float(imbalance),
        prior=prior.tolist(),
        balanced_val=bool(balanced_val),
        ensure_all_classes=bool(ensure_all_classes),
        seed=int(seed),
        source=osp.abspath(fmnist_dir),
        splits={})
    claim_out_dir(
        out_dir, 'fmnist_ade_scenes',
        dict(
            fmnist_dir=osp.abspath(fmnist_dir),
            num_train=num_train,
            num_val=num_val,
            canvas=canvas,
            objects_per_scene=list(objects_per_scene),
            scales=[float(x) for x in scales],
            imbalance=float(imbalance),
            balanced_val=bool(balanced_val),
            ensure_all_classes=bool(ensure_all_classes),
            seed=seed))
    for split, num in (('training', num_train), ('validation', num_val)):
        images, labels = load_fashion_mnist(fmnist_dir, SPLITS[split])
        pools = {c: np.flatnonzero(labels == c) for c in range(num_classes)}
        empty = [c for c, pool in pools.items() if pool.size == 0]
        if empty:
            label_file = IDX_FILES[f'{SPLITS[split]}_labels']
            raise ValueError(f'{label_file} has no object of class(es) '
                             f'{empty}')
        split_prior = (
            np.full(num_classes, 1.0 / num_classes)
            if split == 'validation' and balanced_val else prior)
        scenes = draw_object_classes(rng, num, objects_per_scene, split_prior,
                                     ensure_all_classes)
        img_dir = osp.join(out_dir, 'images', split)
        ann_dir = osp.join(out_dir, 'annotations', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        objects = np.zeros(num_classes, np.int64)
        pixels = np.zeros(num_classes + 1, np.int64)
        for index, classes in enumerate(scenes):
            image, label = render_scene(rng, classes, images, pools, canvas,
                                        scales)
            name = f'{index:06d}'
            Image.fromarray(image).save(
                osp.join(img_dir, name + '.jpg'), quality=95)
            Image.fromarray(label).save(osp.join(ann_dir, name + '.png'))
            objects += np.bincount(classes, minlength=num_classes)
            pixels += np.bincount(label.ravel(), minlength=num_classes + 1)
        meta['splits'][split] = dict(
            num_images=num,
            objects=objects.tolist(),
            other_pixels=int(pixels[0]),
            pixels=pixels[1:].tolist())
    with open(osp.join(out_dir, META_NAME), 'w', encoding='utf-8') as file:
        json.dump(meta, file, indent=1)
    return meta


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Build the Fashion-MNIST scenes segmentation set in '
        'the ADE20K layout')
    parser.add_argument('out_dir', help='output folder (data_root)')
    parser.add_argument(
        '--fmnist-dir',
        default=None,
        help='folder of the Fashion-MNIST IDX .gz files (default: '
        '/usr/share/datasets/fashion-mnist)')
    parser.add_argument('--num-train', type=int, default=3000)
    parser.add_argument('--num-val', type=int, default=500)
    parser.add_argument('--canvas', type=int, default=64)
    parser.add_argument(
        '--objects', type=int, nargs=2, default=(1, 3), metavar=('MIN', 'MAX'))
    parser.add_argument('--scales', type=float, nargs='+', default=(1.5, 2.0))
    parser.add_argument('--imbalance', type=float, default=50.0)
    parser.add_argument('--balanced-val', action='store_true')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    meta = build_fmnist_scenes(
        args.out_dir,
        fmnist_dir=args.fmnist_dir,
        num_train=args.num_train,
        num_val=args.num_val,
        canvas=args.canvas,
        objects_per_scene=tuple(args.objects),
        scales=args.scales,
        imbalance=args.imbalance,
        balanced_val=args.balanced_val,
        seed=args.seed)
    train = meta['splits']['training']
    print(f'{train["num_images"]} training and '
          f'{meta["splits"]["validation"]["num_images"]} validation scenes '
          f'in {osp.abspath(args.out_dir)}; training objects per class: '
          f'{train["objects"]}')
    return meta


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
