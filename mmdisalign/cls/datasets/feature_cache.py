"""Frozen stage-1 features of a training set, memory-mapped on disk.

Stage 2 of DisAlign trains a few thousand parameters on top of a frozen
network. For classification the frozen part (backbone + neck) maps every
training image to one pooled feature, so stage 2 only needs those features
and the labels. ``tools/cache_features.py`` runs the frozen stage-1 model
once over the training set (or several times with the training
augmentation) and stores them with :class:`FeatureCacheWriter`;
:class:`FeatureCacheDataset` reads them memory-mapped, so a cache larger
than the RAM trains batch by batch, with mmengine's Runner and a
``CachedFeatureClassifier``.

Layout of a cache directory::

    feats.npy    (P, N, D)  pooled features (the classifier input)
    logits.npy   (P, N, K)  stage-1 classifier logits (uncalibrated)
    labels.npy   (N,)       int64 ground-truth labels
    meta.json    sizes, dtype, passes, what produced it

with ``P`` passes over the ``N`` training samples (in dataset order), ``D``
feature channels and ``K`` classes. Features and logits are ``float32`` or
``float16``. ImageNet-LT with ResNet-50 (N = 115,846, D = 2048, K = 1000)
takes 115,846 x 2048 x 2 bytes = 474.5 MB of float16 features (949 MB in
float32) and 231.7 MB of float16 logits per pass: see :func:`cache_nbytes`.

``meta.json`` also records the SHA-1 of the backbone and neck weights the
features come from (:func:`feature_fingerprint`); ``FeatureCacheHook``
refuses to train on a cache of other weights.
"""
import hashlib
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmpretrain.registry import DATASETS
from mmpretrain.structures import DataSample
from torch.utils.data import Dataset

__all__ = [
    'CACHE_VERSION', 'cache_nbytes', 'feature_fingerprint', 'stage1_logits',
    'FeatureCacheWriter', 'FeatureCacheDataset'
]

#: Format version written to ``meta.json``.
CACHE_VERSION = 1
_DTYPES = ('float32', 'float16')
_FILES = ('feats.npy', 'logits.npy', 'labels.npy', 'meta.json')


def _check_dtype(dtype: str) -> np.dtype:
    if str(dtype) not in _DTYPES:
        raise ValueError(f'dtype must be one of {_DTYPES}, but got {dtype!r}')
    return np.dtype(str(dtype))


def cache_nbytes(num_samples: int,
                 feat_dim: int,
                 num_classes: int,
                 dtype: str = 'float16',
                 passes: int = 1) -> Dict[str, int]:
    """Bytes a cache takes on disk (without the ``.npy`` headers).

    Args:
        num_samples (int): Training samples ``N``.
        feat_dim (int): Feature channels ``D``.
        num_classes (int): Classes ``K``.
        dtype (str): ``'float16'`` or ``'float32'``. Defaults to
            'float16'.
        passes (int): Passes ``P``. Defaults to 1.

    Returns:
        dict: ``feats``, ``logits``, ``labels`` and ``total`` in bytes.

    Examples:
        >>> cache_nbytes(115846, 2048, 1000)['feats']  # ImageNet-LT, R-50
        474505216
    """
    item = _check_dtype(dtype).itemsize
    sizes = dict(
        feats=passes * num_samples * feat_dim * item,
        logits=passes * num_samples * num_classes * item,
        labels=num_samples * 8)
    sizes['total'] = sum(sizes.values())
    return sizes


def feature_fingerprint(model: torch.nn.Module) -> str:
    """SHA-1 of the weights the cached features depend on.

    Every tensor of ``model.state_dict()`` under ``backbone.`` and
    ``neck.``, in key order.

    Args:
        model (nn.Module): An mmpretrain classifier.

    Returns:
        str: The hex digest.
    """
    digest = hashlib.sha1()
    for key, value in model.state_dict().items():
        if key.startswith(('backbone.', 'neck.')):
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def stage1_logits(head: torch.nn.Module,
                  feats: Tuple[torch.Tensor]) -> torch.Tensor:
    """Uncalibrated logits of the stage-1 classifier of a head.

    ``cosine_logits`` for the cosine heads, ``fc(pre_logits(feats))`` for
    linear ones.

    Args:
        head (nn.Module): An mmpretrain classification head.
        feats (tuple[Tensor]): The neck output.

    Returns:
        Tensor: ``(N, K)`` logits.
    """
    if hasattr(head, 'cosine_logits'):
        return head.cosine_logits(feats)[0]
    return head.fc(head.pre_logits(feats))


class FeatureCacheWriter:
    """Create a cache directory and fill it chunk by chunk.

    The arrays are created with :func:`numpy.lib.format.open_memmap`, so
    nothing larger than a chunk is held in memory. ``meta.json`` is written
    by :meth:`close`; a directory without it is an unfinished cache that
    :class:`FeatureCacheDataset` refuses to open.

    Args:
        out_dir (str): Directory to create (must not hold a cache yet unless
            ``overwrite``).
        num_samples (int): Training samples ``N``.
        feat_dim (int): Feature channels ``D``.
        num_classes (int): Classes ``K``.
        passes (int): Passes ``P``. Defaults to 1.
        dtype (str): ``'float32'`` or ``'float16'``. Defaults to
            'float32'.
        overwrite (bool): Replace an existing cache. Defaults to False.
    """

    def __init__(self,
                 out_dir: str,
                 num_samples: int,
                 feat_dim: int,
                 num_classes: int,
                 passes: int = 1,
                 dtype: str = 'float32',
                 overwrite: bool = False) -> None:
        self.dtype = _check_dtype(dtype)
        existing = [f for f in _FILES if osp.exists(osp.join(out_dir, f))]
        if existing and not overwrite:
            raise FileExistsError(
                f'{out_dir} already holds a feature cache ({existing}); '
                'pass overwrite=True (--overwrite) to replace it')
        os.makedirs(out_dir, exist_ok=True)
        meta_file = osp.join(out_dir, 'meta.json')
        if osp.exists(meta_file):
            os.remove(meta_file)  # unfinished until close()
        self.out_dir = out_dir
        self.shape = (passes, num_samples)

        def open_array(name, dtype, shape):
            return np.lib.format.open_memmap(
                osp.join(out_dir, name), mode='w+', dtype=dtype, shape=shape)

        self.feats = open_array('feats.npy', self.dtype,
                                self.shape + (feat_dim, ))
        self.logits = open_array('logits.npy', self.dtype,
                                 self.shape + (num_classes, ))
        self.labels = open_array('labels.npy', np.int64, (num_samples, ))
        self._written = np.zeros(self.shape, dtype=bool)

    def write(self, pass_idx: int, indices: Sequence[int], feats, logits,
              labels) -> None:
        """Store the rows ``indices`` of pass ``pass_idx``.

        Args:
            pass_idx (int): The pass.
            indices (Sequence[int]): Dataset indices of the rows.
            feats (Tensor | np.ndarray): ``(len(indices), D)``.
            logits (Tensor | np.ndarray): ``(len(indices), K)``.
            labels (Tensor | np.ndarray): ``(len(indices),)``.
        """
        idx = np.asarray(indices, dtype=np.int64)
        feats, logits, labels = (
            x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
            for x in (feats, logits, labels))
        # numpy would broadcast a wrong shape into the rows without a word
        for name, array, expect in (
            ('feats', feats, (idx.size, self.feats.shape[2])),
            ('logits', logits, (idx.size, self.logits.shape[2])),
            ('labels', labels, (idx.size, )),
        ):
            if array.shape != expect:
                raise ValueError(f'{name} must have shape {expect}, but got '
                                 f'{array.shape}')
        if pass_idx == 0:
            self.labels[idx] = labels
        elif not np.array_equal(self.labels[idx], labels):
            bad = idx[self.labels[idx] != labels][0]
            raise ValueError(f'pass {pass_idx} gives sample {bad} another '
                             'label than pass 0: the data order changed')
        self.feats[pass_idx, idx] = feats
        self.logits[pass_idx, idx] = logits
        self._written[pass_idx, idx] = True

    def close(self, meta: Optional[dict] = None) -> dict:
        """Flush the arrays and write ``meta.json``.

        Args:
            meta (dict, optional): Extra JSON-serialisable information.

        Returns:
            dict: The full meta data written.

        Raises:
            RuntimeError: If some rows were never written.
        """
        missing = np.argwhere(~self._written)
        if missing.size:
            p, i = missing[0]
            raise RuntimeError(
                f'{len(missing)} cache rows were never written (first: pass '
                f'{p}, sample {i})')
        for array in (self.feats, self.logits, self.labels):
            array.flush()
        full = dict(
            version=CACHE_VERSION,
            num_samples=self.shape[1],
            passes=self.shape[0],
            feat_dim=self.feats.shape[2],
            num_classes=self.logits.shape[2],
            dtype=self.dtype.name,
            label_counts=np.bincount(
                self.labels, minlength=self.logits.shape[2]).tolist())
        full.update(meta or {})
        with open(osp.join(self.out_dir, 'meta.json'), 'w') as f:
            json.dump(full, f, indent=1)
        del self.feats, self.logits, self.labels
        return full


@DATASETS.register_module()
class FeatureCacheDataset(Dataset):
    """A training set as cached features, for stage 2 on the Runner.

    Reads a cache of ``tools/cache_features.py`` memory-mapped (read-only):
    item ``i`` is the pooled feature of sample ``i`` in the current pass
    (float32) and its label, as ``dict(inputs=..., data_samples=...)`` for
    :class:`CachedFeatureClassifier`. ``FeatureCacheHook`` selects pass
    ``epoch % passes`` before every epoch. Samplers see the labels through
    :meth:`get_gt_labels` (e.g. ``ClassBalancedSampler``).

    Args:
        cache_dir (str): The cache directory.

    Attributes:
        meta (dict): The contents of ``meta.json``.
        feats (np.memmap): ``(P, N, D)``.
        logits (np.memmap): ``(P, N, K)``.
        labels (np.ndarray): ``(N,)`` int64.
        pass_idx (int): The pass items are read from.
    """

    def __init__(self, cache_dir: str) -> None:
        meta_file = osp.join(cache_dir, 'meta.json')
        if not osp.isfile(meta_file):
            raise FileNotFoundError(
                f'{cache_dir} is not a finished feature cache (no '
                'meta.json); create it with tools/cache_features.py')
        with open(meta_file) as f:
            self.meta = json.load(f)
        if self.meta.get('version') != CACHE_VERSION:
            raise ValueError(
                f'{meta_file}: cache format version '
                f'{self.meta.get("version")!r}, expected {CACHE_VERSION}')
        self.cache_dir = cache_dir
        self.feats = np.load(osp.join(cache_dir, 'feats.npy'), mmap_mode='r')
        self.logits = np.load(osp.join(cache_dir, 'logits.npy'), mmap_mode='r')
        self.labels = np.load(osp.join(cache_dir, 'labels.npy'))
        passes, num = self.meta['passes'], self.meta['num_samples']
        # arrays of another cache in the same directory would train silently
        for name, array, expect in (
            ('feats', self.feats, (passes, num, self.meta['feat_dim'])),
            ('logits', self.logits, (passes, num, self.meta['num_classes'])),
            ('labels', self.labels, (num, )),
        ):
            if array.shape != expect:
                raise ValueError(f'{cache_dir}/{name}.npy has shape '
                                 f'{array.shape}, meta.json says {expect}')
        classes = self.meta.get('classes') or [
            str(i) for i in range(self.meta['num_classes'])
        ]
        self.metainfo = dict(classes=tuple(classes))
        self.pass_idx = 0

    @property
    def passes(self) -> int:
        """int: Number of passes."""
        return self.meta['passes']

    def set_pass(self, pass_idx: int) -> None:
        """Read the items from pass ``pass_idx`` from now on."""
        self.pass_idx = pass_idx

    def get_gt_labels(self) -> np.ndarray:
        """np.ndarray: The labels of all samples."""
        return self.labels

    def get_cat_ids(self, idx: int) -> List[int]:
        """The label of sample ``idx``, as a list."""
        return [int(self.labels[idx])]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, idx: int) -> dict:
        feat = np.array(self.feats[self.pass_idx, idx], dtype=np.float32)
        return dict(
            inputs=torch.from_numpy(feat),
            data_samples=DataSample().set_gt_label(int(self.labels[idx])))
