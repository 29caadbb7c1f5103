from .class_balanced_sampler import ClassBalancedSampler
from .fashion_mnist_lt import (FASHION_MNIST_CLASSES, build_fashion_mnist_lt,
                               long_tail_counts, read_idx)
from .inaturalist import INaturalist2018
from .list_file import (check_no_empty_class, count_labels,
                        list_file_class_counts, read_list_file)
from .long_tail_list import LongTailListDataset
from .statistics import dataset_class_counts

__all__ = [
    'LongTailListDataset', 'read_list_file', 'count_labels',
    'list_file_class_counts', 'check_no_empty_class', 'dataset_class_counts',
    'FASHION_MNIST_CLASSES', 'build_fashion_mnist_lt', 'long_tail_counts',
    'read_idx', 'INaturalist2018', 'ClassBalancedSampler'
]
