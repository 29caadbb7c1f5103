"""DisAlign decode heads, registered in mmseg's ``MODELS``."""
from .disalign_head import (CONFIDENCE_MODES, DisAlignDecodeHeadMixin,
                            DisAlignDepthwiseSeparableASPPHead,
                            DisAlignFCNHead)

__all__ = [
    'DisAlignDecodeHeadMixin', 'DisAlignFCNHead',
    'DisAlignDepthwiseSeparableASPPHead', 'CONFIDENCE_MODES'
]
