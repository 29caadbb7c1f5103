"""DisAlign for mmpretrain (classification).

Importing this package imports mmpretrain (never mmseg / mmdet) and
registers into mmpretrain's registries: the heads
(``DisAlignLinearClsHead``, ``CosineClsHead``, ``DisAlignCosineClsHead``),
``CachedFeatureClassifier`` and ``CachedFeatureDataPreprocessor`` in
``MODELS``, ``LongTailListDataset``, ``INaturalist2018`` and
``FeatureCacheDataset`` in ``DATASETS``, ``ClassBalancedSampler`` in
``DATA_SAMPLERS``, ``LongTailAccuracy`` in ``METRICS`` and
``FeatureCacheHook`` in ``HOOKS``; ``feature_cache_collate`` goes to
mmengine's ``FUNCTIONS``. The task-agnostic parts (calibration, GRW loss,
freeze hook) come from :mod:`mmdisalign` itself.
"""
import mmdisalign  # noqa: F401  (root-registry modules, checkpoint fix)
from .datasets import *  # noqa: F401,F403
from .engine import *  # noqa: F401,F403
from .evaluation import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .datasets import __all__ as _datasets_all
from .engine import __all__ as _engine_all
from .evaluation import __all__ as _evaluation_all
from .models import __all__ as _models_all

__all__ = _datasets_all + _engine_all + _evaluation_all + _models_all
