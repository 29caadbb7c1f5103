from .cosine_head import CosineClsHead, DisAlignCosineClsHead
from .disalign_linear_head import DisAlignLinearClsHead
from .utils import build_calibration

__all__ = [
    'DisAlignLinearClsHead', 'CosineClsHead', 'DisAlignCosineClsHead',
    'build_calibration'
]
