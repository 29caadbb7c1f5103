from .cached_feature_classifier import (CachedFeatureClassifier,
                                        CachedFeatureDataPreprocessor)
from .cosine_head import CosineClsHead, DisAlignCosineClsHead
from .disalign_linear_head import DisAlignLinearClsHead
from .utils import build_calibration

__all__ = [
    'DisAlignLinearClsHead', 'CosineClsHead', 'DisAlignCosineClsHead',
    'CachedFeatureClassifier', 'CachedFeatureDataPreprocessor',
    'build_calibration'
]
