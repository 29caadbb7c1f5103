"""DisAlign for mmsegmentation.

Importing this package registers :class:`DisAlignFCNHead` and
:class:`DisAlignDepthwiseSeparableASPPHead` in mmseg's ``MODELS`` and
:class:`HeadBodyTailIoUMetric` in mmseg's ``METRICS`` (and, through
``mmdisalign``, the calibration, the GRW loss and the freeze hook in
mmengine's root registries). Configs load it with
``custom_imports = dict(imports=['mmdisalign.seg'])``.
"""
import mmdisalign  # noqa: F401  (root registries, checkpoint loader)
from .evaluation import (HeadBodyTailIoUMetric, class_pixel_ratios,
                         group_classes)
from .models import (DisAlignDecodeHeadMixin,
                     DisAlignDepthwiseSeparableASPPHead, DisAlignFCNHead)
from .pixel_freq import (check_classes_present, count_class_pixels,
                         save_pixel_freq)

__all__ = [
    'DisAlignDecodeHeadMixin', 'DisAlignFCNHead',
    'DisAlignDepthwiseSeparableASPPHead', 'HeadBodyTailIoUMetric',
    'class_pixel_ratios', 'group_classes', 'count_class_pixels',
    'check_classes_present', 'save_pixel_freq'
]
