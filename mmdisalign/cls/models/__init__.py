from .cached_feature_classifier import (CachedFeatureClassifier,
                                        CachedFeatureDataPreprocessor)
from .cosine_head import CosineClsHead, DisAlignCosineClsHead
from .disalign_cls_head import (DisAlignClsHeadMixin, DisAlignLinearClsHead,
                                DisAlignStackedLinearClsHead,
                                DisAlignVisionTransformerClsHead)

__all__ = [
    'DisAlignClsHeadMixin', 'DisAlignLinearClsHead',
    'DisAlignStackedLinearClsHead', 'DisAlignVisionTransformerClsHead',
    'CosineClsHead', 'DisAlignCosineClsHead', 'CachedFeatureClassifier',
    'CachedFeatureDataPreprocessor'
]
