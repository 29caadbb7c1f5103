"""Read IDX files, the format of MNIST and Fashion-MNIST.

Task-agnostic (numpy only): the classification data set
(``disalign_demo/fashion_mnist_lt.py``) and the toy scene builders of
segmentation (``tools/dataset_converters/fmnist_ade_scenes.py``) and
detection (``disalign_demo/fmnist_lvis.py``) all read Fashion-MNIST from
the gzipped IDX files of the Debian package ``dataset-fashion-mnist``.
"""
import gzip
import os.path as osp
from typing import Tuple

import numpy as np

__all__ = [
    'FASHION_MNIST_CLASSES', 'DEFAULT_FASHION_MNIST_DIR', 'IDX_FILES',
    'read_idx', 'load_fashion_mnist'
]

FASHION_MNIST_CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
                         'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
# Installed by the Debian package ``dataset-fashion-mnist``.
DEFAULT_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist'
#: The four Fashion-MNIST files, relative to their folder.
IDX_FILES = dict(
    train_images='train-images-idx3-ubyte.gz',
    train_labels='train-labels-idx1-ubyte.gz',
    test_images='t10k-images-idx3-ubyte.gz',
    test_labels='t10k-labels-idx1-ubyte.gz')


def read_idx(path: str) -> np.ndarray:
    """Read an IDX file (optionally gzipped) of unsigned bytes.

    Args:
        path (str): ``*-idx1-ubyte[.gz]`` (labels) or ``*-idx3-ubyte[.gz]``
            (images).

    Returns:
        np.ndarray: uint8 array of the stored shape.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'IDX file not found: {path} (install the Debian package '
            f'dataset-fashion-mnist, or pass another directory)')
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f'{path} is not an IDX file (bad magic number)')
    if data[2] != 0x08:
        raise ValueError(
            f'{path}: only unsigned-byte IDX files are supported, got type '
            f'code 0x{data[2]:02x}')
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(
        int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
    expected = int(np.prod(shape)) if shape else 0
    if len(data) - header != expected:
        raise ValueError(
            f'{path}: header announces shape {shape} ({expected} bytes) but '
            f'the file holds {len(data) - header} bytes')
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def load_fashion_mnist(src_dir: str,
                       split: str) -> Tuple[np.ndarray, np.ndarray]:
    """Images and labels of one Fashion-MNIST split.

    Args:
        src_dir (str): Folder of the four files of :data:`IDX_FILES`, e.g.
            :data:`DEFAULT_FASHION_MNIST_DIR`.
        split (str): ``'train'`` (60000 images) or ``'test'`` (t10k).

    Returns:
        tuple[np.ndarray, np.ndarray]: uint8 images (N, 28, 28) and labels
        (N,).
    """
    if split not in ('train', 'test'):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return (read_idx(osp.join(src_dir, IDX_FILES[f'{split}_images'])),
            read_idx(osp.join(src_dir, IDX_FILES[f'{split}_labels'])))
