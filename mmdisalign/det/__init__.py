"""DisAlign for mmdetection: importing it imports mmdet (never mmseg or
mmpretrain), registers the box head, the dense heads and the category check
hook in mmdet's registries and lets the ``lvis`` evaluation run on
numpy >= 1.24."""
import mmdisalign  # noqa: F401  (root-registry modules, checkpoint fix)
from .bbox_head import (DisAlignConvFCBBoxHeadMixin, DisAlignShared2FCBBoxHead,
                        DisAlignShared4Conv1FCBBoxHead)
from .category_check import DisAlignCategoryCheckHook, dataset_category_ids
from .dense_heads import (DisAlignATSSHead, DisAlignDenseHeadMixin,
                          DisAlignFCOSHead, DisAlignRetinaHead)
from .lvis_compat import patch_lvis_numpy_aliases
from .lvis_stats import (category_stats, frequency_group, load_annotations,
                         write_class_freq)

patch_lvis_numpy_aliases()

__all__ = [
    'DisAlignConvFCBBoxHeadMixin', 'DisAlignShared2FCBBoxHead',
    'DisAlignShared4Conv1FCBBoxHead', 'DisAlignDenseHeadMixin',
    'DisAlignRetinaHead', 'DisAlignFCOSHead', 'DisAlignATSSHead',
    'DisAlignCategoryCheckHook', 'dataset_category_ids', 'category_stats',
    'frequency_group', 'load_annotations', 'write_class_freq',
    'patch_lvis_numpy_aliases'
]
