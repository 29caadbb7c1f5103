from .class_balanced_sampler import ClassBalancedSampler
from .feature_cache import (FeatureCacheBatch, FeatureCacheDataset,
                            feature_cache_collate, feature_fingerprint,
                            stage1_logits)
from .inaturalist import INaturalist2018
from .list_file import (check_no_empty_class, count_labels,
                        list_file_class_counts, read_list_file)
from .long_tail_list import LongTailListDataset
from .statistics import dataset_class_counts

__all__ = [
    'LongTailListDataset', 'read_list_file', 'count_labels',
    'list_file_class_counts', 'check_no_empty_class', 'dataset_class_counts',
    'INaturalist2018', 'ClassBalancedSampler', 'FeatureCacheDataset',
    'FeatureCacheBatch', 'feature_cache_collate', 'feature_fingerprint',
    'stage1_logits'
]
