"""Class-balanced sampling (the cRT baseline's classifier re-training)."""
import math
from typing import Iterator, Optional, Sized

import numpy as np
import torch
from mmengine.dist import get_dist_info, sync_random_seed
from mmpretrain.registry import DATA_SAMPLERS
from torch.utils.data import Sampler

from .statistics import dataset_labels

__all__ = ['ClassBalancedSampler']


@DATA_SAMPLERS.register_module()
class ClassBalancedSampler(Sampler):
    """Draw a class uniformly, then an image of that class uniformly.

    The cRT sampling of Kang et al. An epoch has ``len(dataset)`` draws,
    split over the ranks like mmengine's ``DefaultSampler``; each rank's
    generator is seeded by ``seed + epoch + rank``.

    Args:
        dataset (Sized): The dataset (``get_gt_labels()`` or
            ``get_data_info(i)``).
        seed (int, optional): Random seed, shared by all ranks. Defaults
            to None (a random seed synchronised across ranks).
    """

    def __init__(self, dataset: Sized, seed: Optional[int] = None) -> None:
        rank, world_size = get_dist_info()
        self.rank = rank
        self.world_size = world_size
        self.dataset = dataset
        self.seed = sync_random_seed() if seed is None else seed
        self.epoch = 0
        labels = dataset_labels(dataset, 'ClassBalancedSampler')
        if labels.size == 0:
            raise ValueError('ClassBalancedSampler got an empty dataset')
        order = np.argsort(labels, kind='stable')
        classes, starts, counts = np.unique(
            labels[order], return_index=True, return_counts=True)
        self.classes = classes
        self.class_indices = [
            torch.from_numpy(order[s:s + c].copy())
            for s, c in zip(starts, counts)
        ]
        self.num_samples = math.ceil(len(dataset) / world_size)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch + self.rank)
        cls = torch.randint(
            len(self.class_indices), (self.num_samples, ), generator=g)
        out = []
        for c in cls.tolist():
            members = self.class_indices[c]
            j = torch.randint(len(members), (1, ), generator=g).item()
            out.append(int(members[j]))
        return iter(out)

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch (changes the draws).

        Args:
            epoch (int): The epoch number.
        """
        self.epoch = epoch
