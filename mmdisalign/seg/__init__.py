"""DisAlign for mmsegmentation: importing it imports mmseg (never mmdet or
mmpretrain through mmdisalign) and registers the heads and the metric below
in mmseg's registries."""
import mmdisalign  # noqa: F401  (root registries, checkpoint loader)
from .evaluation import (HeadBodyTailIoUMetric, class_pixel_ratios,
                         group_classes)
from .models import (DisAlignDecodeHeadMixin,
                     DisAlignDepthwiseSeparableASPPHead, DisAlignFCNHead,
                     DisAlignSegformerHead, DisAlignUPerHead)
from .pixel_freq import (check_classes_present, count_class_pixels,
                         save_pixel_freq)

__all__ = [
    'DisAlignDecodeHeadMixin', 'DisAlignFCNHead',
    'DisAlignDepthwiseSeparableASPPHead', 'DisAlignUPerHead',
    'DisAlignSegformerHead', 'HeadBodyTailIoUMetric', 'class_pixel_ratios',
    'group_classes', 'count_class_pixels', 'check_classes_present',
    'save_pixel_freq'
]
