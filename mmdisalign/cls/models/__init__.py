from .cached_feature_classifier import (CachedFeatureClassifier,
                                        CachedFeatureDataPreprocessor)
from .cosine_head import CosineClsHead, DisAlignCosineClsHead
from .disalign_linear_head import DisAlignLinearClsHead

__all__ = [
    'DisAlignLinearClsHead', 'CosineClsHead', 'DisAlignCosineClsHead',
    'CachedFeatureClassifier', 'CachedFeatureDataPreprocessor'
]
