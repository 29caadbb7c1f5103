"""Frozen stage-1 features of a training set, memory-mapped on disk.

Stage 2 of DisAlign trains a few thousand parameters on top of a frozen
network. For classification the frozen part (backbone + neck) maps every
training image to one pooled feature, so stage 2 only needs those features
and the labels. ``tools/cache_features.py`` runs the frozen stage-1 model
once over the training set (or several times with the training
augmentation) and writes them; :class:`FeatureCacheDataset` reads them
memory-mapped, so a cache larger than the RAM trains batch by batch, with
mmengine's Runner and a ``CachedFeatureClassifier``.

Layout of a cache directory::

    feats.npy    (P, N, D)  pooled features (the classifier input)
    logits.npy   (P, N, K)  stage-1 classifier logits (uncalibrated)
    labels.npy   (N,)       int64 ground-truth labels
    meta.json    sizes, dtype, passes, what produced it

with ``P`` passes over the ``N`` training samples (in dataset order), ``D``
feature channels and ``K`` classes. Features and logits are ``float32`` or
``float16``. ``meta.json`` also records the SHA-1 of the backbone and neck
weights the features come from (:func:`feature_fingerprint`);
``FeatureCacheHook`` refuses to train on a cache of other weights.
"""
import hashlib
import json
import os.path as osp
from collections.abc import Sequence
from typing import List, Tuple

import numpy as np
import torch
from mmengine.registry import FUNCTIONS
from mmpretrain.registry import DATASETS
from mmpretrain.structures import DataSample
from torch.utils.data import Dataset

__all__ = [
    'CACHE_VERSION', 'feature_fingerprint', 'stage1_logits',
    'FeatureCacheDataset', 'FeatureCacheBatch', 'feature_cache_collate'
]

#: Format version written to ``meta.json``.
CACHE_VERSION = 1


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

    ``cosine_logits`` for the cosine heads, ``classify`` for the other
    DisAlign heads, ``fc(pre_logits(feats))`` for upstream linear ones.

    Args:
        head (nn.Module): An mmpretrain classification head.
        feats (tuple[Tensor]): The neck output.

    Returns:
        Tensor: ``(N, K)`` logits.
    """
    if hasattr(head, 'cosine_logits'):
        return head.cosine_logits(feats)[0]
    if hasattr(head, 'classify'):  # DisAlignClsHeadMixin
        return head.classify(head.pre_logits(feats))[0]
    return head.fc(head.pre_logits(feats))


@DATASETS.register_module()
class FeatureCacheDataset(Dataset):
    """A training set as cached features, for stage 2 on the Runner.

    Reads a cache of ``tools/cache_features.py`` memory-mapped (read-only):
    item ``i`` is the pooled feature of sample ``i`` in the current pass
    (float32) and its label, as ``dict(inputs=..., data_samples=...)``.
    The DataLoader reads a batch in one go (:meth:`__getitems__`), which
    :func:`feature_cache_collate` hands to ``CachedFeatureClassifier`` as
    two tensors. ``FeatureCacheHook`` selects pass ``epoch % passes``
    before every epoch. Samplers see the labels through
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

    def __getitems__(self, indices: List[int]) -> 'FeatureCacheBatch':
        """The items ``indices`` with one read of the memory map."""
        feats = np.asarray(
            self.feats[self.pass_idx, indices], dtype=np.float32)
        return FeatureCacheBatch(
            torch.from_numpy(feats), torch.from_numpy(self.labels[indices]))


class FeatureCacheBatch(Sequence):
    """Items of a :class:`FeatureCacheDataset` read together.

    A sequence of the items (as :meth:`FeatureCacheDataset.__getitem__`
    gives them, so any collate function takes it) that holds them as two
    tensors, which :func:`feature_cache_collate` passes on as they are.

    Args:
        inputs (Tensor): ``(B, D)`` float32 features.
        gt_label (Tensor): ``(B,)`` int64 labels.
    """

    def __init__(self, inputs: torch.Tensor, gt_label: torch.Tensor) -> None:
        self.inputs = inputs
        self.gt_label = gt_label

    def __len__(self) -> int:
        return len(self.gt_label)

    def __getitem__(self, idx: int) -> dict:
        return dict(
            inputs=self.inputs[idx],
            data_samples=DataSample(gt_label=self.gt_label[idx].view(1)))


@FUNCTIONS.register_module()
def feature_cache_collate(data_batch: Sequence) -> dict:
    """Collate cached features: ``dict(inputs=(B, D), gt_label=(B,))``.

    A :class:`FeatureCacheBatch` is passed on as it is; other items
    (``dict(inputs=..., data_samples=...)``, e.g. from a dataset wrapper)
    are stacked. ``CachedFeatureDataPreprocessor`` makes the data samples
    on the model's device.

    Args:
        data_batch (Sequence): The items of a batch.

    Returns:
        dict: ``inputs`` and ``gt_label``.
    """
    if isinstance(data_batch, FeatureCacheBatch):
        return dict(inputs=data_batch.inputs, gt_label=data_batch.gt_label)
    return dict(
        inputs=torch.stack([item['inputs'] for item in data_batch]),
        gt_label=torch.cat(
            [item['data_samples'].gt_label for item in data_batch]))
