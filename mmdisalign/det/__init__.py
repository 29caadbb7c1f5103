"""DisAlign for mmdetection (detection and instance segmentation).

Importing this package imports mmdet (never mmseg / mmpretrain) and
registers into mmdet's registries: the box head
``DisAlignShared2FCBBoxHead`` in ``MODELS`` and
``DisAlignCategoryCheckHook`` in ``HOOKS``. The task-agnostic parts
(calibration, GRW loss, freeze hook) come from :mod:`mmdisalign` itself.
:mod:`mmdisalign.det.lvis_stats` counts the per-category training
statistics of LVIS / COCO-format files. Importing it also lets the ``lvis``
evaluation of PyPI run on numpy >= 1.24 (:mod:`.lvis_compat`).
"""
import mmdisalign  # noqa: F401  (root-registry modules, checkpoint fix)
from .bbox_head import DisAlignShared2FCBBoxHead
from .category_check import DisAlignCategoryCheckHook, dataset_category_ids
from .lvis_compat import patch_lvis_numpy_aliases
from .lvis_stats import (category_stats, frequency_group, load_annotations,
                         write_class_freq)

patch_lvis_numpy_aliases()

__all__ = [
    'DisAlignShared2FCBBoxHead', 'DisAlignCategoryCheckHook',
    'dataset_category_ids', 'category_stats', 'frequency_group',
    'load_annotations', 'write_class_freq', 'patch_lvis_numpy_aliases'
]
