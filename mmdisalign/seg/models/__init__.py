"""DisAlign decode heads, registered in mmseg's ``MODELS``."""
from .disalign_head import (CONFIDENCE_MODES, DisAlignDecodeHeadMixin,
                            DisAlignDepthwiseSeparableASPPHead,
                            DisAlignFCNHead, DisAlignSegformerHead,
                            DisAlignUPerHead)

__all__ = [
    'DisAlignDecodeHeadMixin', 'DisAlignFCNHead',
    'DisAlignDepthwiseSeparableASPPHead', 'DisAlignUPerHead',
    'DisAlignSegformerHead', 'CONFIDENCE_MODES'
]
