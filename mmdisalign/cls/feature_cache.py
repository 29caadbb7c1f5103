"""Frozen stage-1 features of a training set, memory-mapped on disk.

Stage 2 of DisAlign trains a few thousand parameters on top of a frozen
network. For classification the frozen part (backbone + neck) maps every
training image to one pooled feature, so stage 2 only needs those features
(and the labels): :func:`extract_features` runs the frozen stage-1 model
once over the training set, optionally several times with the training
augmentation, and :class:`FeatureCacheWriter` stores the result as ``.npy``
files that :class:`FeatureCache` opens memory-mapped, so a cache larger
than the RAM trains batch by batch.

Layout of a cache directory::

    feats.npy    (P, N, D)  pooled features (the classifier input)
    logits.npy   (P, N, K)  stage-1 classifier logits (uncalibrated)
    labels.npy   (N,)       int64 ground-truth labels
    meta.json    sizes, dtype, passes, what produced it

with ``P`` passes over the ``N`` training samples (in dataset order), ``D``
feature channels and ``K`` classes. Features and logits are ``float32`` or
``float16``. ImageNet-LT with ResNet-50 (N = 115,846, D = 2048, K = 1000)
takes 115,846 x 2048 x 2 bytes = 474.5 MB of float16 features (949 MB in
float32) and 231.7 MB of float16 logits per pass: see
:func:`cache_nbytes`.
"""
import json
import os
import os.path as osp
import time
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch

__all__ = [
    'CACHE_VERSION', 'cache_nbytes', 'FeatureCacheWriter', 'FeatureCache',
    'extract_features', 'stage1_logits'
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


class FeatureCacheWriter:
    """Create a cache directory and fill it chunk by chunk.

    The arrays are created with :func:`numpy.lib.format.open_memmap`, so
    nothing larger than a chunk is held in memory. ``meta.json`` is written
    by :meth:`close`; a directory without it is an unfinished cache that
    :class:`FeatureCache` refuses to open.

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
        for name, value in (('num_samples', num_samples), ('feat_dim',
                                                           feat_dim),
                            ('num_classes', num_classes), ('passes', passes)):
            if isinstance(
                    value,
                    bool) or not isinstance(value,
                                            (int, np.integer)) or value < 1:
                raise ValueError(
                    f'{name} must be a positive int, but got {value!r}')
        self.dtype = _check_dtype(dtype)
        existing = [f for f in _FILES if osp.exists(osp.join(out_dir, f))]
        if existing and not overwrite:
            raise FileExistsError(
                f'{out_dir} already holds a feature cache ({existing}); '
                'pass overwrite=True (--overwrite) to replace it')
        os.makedirs(out_dir, exist_ok=True)
        self.out_dir = out_dir
        self.shape = (int(passes), int(num_samples))
        open_mm = np.lib.format.open_memmap
        self.feats = open_mm(
            osp.join(out_dir, 'feats.npy'),
            mode='w+',
            dtype=self.dtype,
            shape=self.shape + (int(feat_dim), ))
        self.logits = open_mm(
            osp.join(out_dir, 'logits.npy'),
            mode='w+',
            dtype=self.dtype,
            shape=self.shape + (int(num_classes), ))
        self.labels = open_mm(
            osp.join(out_dir, 'labels.npy'),
            mode='w+',
            dtype=np.int64,
            shape=(int(num_samples), ))
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
        n = idx.size
        if feats.shape != (n, self.feats.shape[2]):
            raise ValueError(
                f'feats must have shape {(n, self.feats.shape[2])}'
                f', but got {feats.shape}')
        if logits.shape != (n, self.logits.shape[2]):
            raise ValueError(
                f'logits must have shape {(n, self.logits.shape[2])}, but '
                f'got {logits.shape}')
        if labels.shape != (n, ):
            raise ValueError(f'labels must have shape {(n, )}, but got '
                             f'{labels.shape}')
        if pass_idx == 0:
            self.labels[idx] = labels
        elif not np.array_equal(self.labels[idx], labels):
            bad = idx[self.labels[idx] != labels][0]
            raise ValueError(f'pass {pass_idx} gives sample {bad} another '
                             'label than pass 0: the data order changed')
        self.feats[pass_idx, idx] = feats.astype(self.dtype, copy=False)
        self.logits[pass_idx, idx] = logits.astype(self.dtype, copy=False)
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
            feat_dim=int(self.feats.shape[2]),
            num_classes=int(self.logits.shape[2]),
            dtype=self.dtype.name,
            label_counts=np.bincount(
                self.labels, minlength=self.logits.shape[2]).tolist())
        full.update(meta or {})
        with open(osp.join(self.out_dir, 'meta.json'), 'w') as f:
            json.dump(full, f, indent=1)
        del self.feats, self.logits, self.labels
        return full


class FeatureCache:
    """Read a cache written by :class:`FeatureCacheWriter`.

    The arrays are opened memory-mapped (read-only); :meth:`batch` reads
    only the requested rows.

    Args:
        cache_dir (str): The cache directory.

    Attributes:
        meta (dict): The contents of ``meta.json``.
        feats (np.memmap): ``(P, N, D)``.
        logits (np.memmap): ``(P, N, K)``.
        labels (np.ndarray): ``(N,)`` int64 (read into memory).
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
        load = np.load
        self.feats = load(osp.join(cache_dir, 'feats.npy'), mmap_mode='r')
        self.logits = load(osp.join(cache_dir, 'logits.npy'), mmap_mode='r')
        self.labels = np.asarray(
            load(osp.join(cache_dir, 'labels.npy'), mmap_mode='r'))
        expect = (self.meta['passes'], self.meta['num_samples'])
        for name, array, last in (('feats', self.feats, self.meta['feat_dim']),
                                  ('logits', self.logits,
                                   self.meta['num_classes'])):
            if array.shape != expect + (last, ):
                raise ValueError(f'{cache_dir}/{name}.npy has shape '
                                 f'{array.shape}, meta.json says '
                                 f'{expect + (last, )}')
        if self.labels.shape != (expect[1], ):
            raise ValueError(f'{cache_dir}/labels.npy has shape '
                             f'{self.labels.shape}, expected {(expect[1], )}')

    @property
    def num_samples(self) -> int:
        """int: Samples per pass."""
        return int(self.meta['num_samples'])

    @property
    def passes(self) -> int:
        """int: Number of passes."""
        return int(self.meta['passes'])

    def batch(self,
              pass_idx: int,
              indices: Sequence[int],
              device: str = 'cpu'
              ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features, logits (float32) and labels of some samples.

        Args:
            pass_idx (int): The pass.
            indices (Sequence[int]): Sample indices, in the wanted order.
            device (str): Device of the returned tensors. Defaults to 'cpu'.

        Returns:
            tuple[Tensor]: ``(B, D)`` features, ``(B, K)`` logits and
            ``(B,)`` labels.
        """
        if not 0 <= pass_idx < self.passes:
            raise IndexError(f'pass {pass_idx} out of range: the cache has '
                             f'{self.passes} pass(es)')
        idx = np.asarray(indices, dtype=np.int64)
        out = []
        for array in (self.feats[pass_idx], self.logits[pass_idx]):
            rows = np.asarray(array[idx], dtype=np.float32)
            out.append(torch.from_numpy(rows).to(device))
        out.append(torch.from_numpy(self.labels[idx]).to(device))
        return tuple(out)


def stage1_logits(head: torch.nn.Module, feats: Tuple[torch.Tensor]):
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
    if isinstance(getattr(head, 'fc', None), torch.nn.Module):
        return head.fc(head.pre_logits(feats))
    raise TypeError(f'{type(head).__name__} has neither `fc` nor '
                    '`cosine_logits`: cannot tell its stage-1 logits')


def _neck_feature(feats) -> torch.Tensor:
    """The single (N, D) tensor of a classifier's neck output."""
    if torch.is_tensor(feats):
        feats = (feats, )
    if not isinstance(feats,
                      (tuple, list)) or len(feats) != 1 or feats[0].dim() != 2:
        shapes = [tuple(f.shape) for f in feats] if isinstance(
            feats, (tuple, list)) else type(feats).__name__
        raise ValueError(
            'feature caching needs a neck that outputs one pooled (N, D) '
            f'feature (e.g. GlobalAveragePooling), but got {shapes}')
    return feats[0]


def extract_features(model: torch.nn.Module,
                     dataloader,
                     writer: FeatureCacheWriter,
                     pass_idx: int,
                     device: str = 'cpu',
                     log_every: int = 0) -> float:
    """Run the frozen feature extractor over a dataloader into a cache.

    The dataloader must yield the training set in dataset order (a
    non-shuffling sampler, ``drop_last=False``); the rows are written at
    positions ``0 .. N-1``. The model is used as it is: put it in the state
    stage 2 trains it in (train mode, frozen norm layers in eval mode).

    Args:
        model (nn.Module): An mmpretrain ``ImageClassifier``.
        dataloader (DataLoader): The training set, in order.
        writer (FeatureCacheWriter): Where the rows go.
        pass_idx (int): The pass being written.
        device (str): Device of the model. Defaults to 'cpu'.
        log_every (int): Print progress every that many batches (0: never).
            Defaults to 0.

    Returns:
        float: Seconds taken.
    """
    start = time.perf_counter()
    pos = 0
    total = len(dataloader)
    with torch.no_grad():
        for i, data in enumerate(dataloader):
            data = model.data_preprocessor(data, False)
            feats = model.extract_feat(data['inputs'])
            feat = _neck_feature(feats)
            logits = stage1_logits(model.head, (feat, ))
            labels = torch.cat(
                [s.gt_label.reshape(-1)[:1] for s in data['data_samples']])
            n = feat.shape[0]
            writer.write(pass_idx, range(pos, pos + n), feat, logits, labels)
            pos += n
            if log_every and (i + 1) % log_every == 0:
                print(
                    f'  pass {pass_idx}: {i + 1}/{total} batches, '
                    f'{time.perf_counter() - start:.0f} s',
                    flush=True)
    if pos != writer.shape[1]:
        raise RuntimeError(f'the dataloader gave {pos} samples, the cache '
                           f'expects {writer.shape[1]}: it must yield the '
                           'whole training set once, without dropping')
    return time.perf_counter() - start
