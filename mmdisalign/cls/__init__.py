"""DisAlign for mmpretrain: importing it imports mmpretrain (never mmseg or
mmdet) and registers the heads, datasets, sampler, metric, hook and the
cached-feature collate function below in mmpretrain's / mmengine's
registries."""
import mmdisalign  # noqa: F401  (root-registry modules, checkpoint fix)
from .datasets import *  # noqa: F401,F403
from .datasets import __all__ as _datasets_all
from .engine import *  # noqa: F401,F403
from .engine import __all__ as _engine_all
from .evaluation import *  # noqa: F401,F403
from .evaluation import __all__ as _evaluation_all
from .models import *  # noqa: F401,F403
from .models import __all__ as _models_all

__all__ = _datasets_all + _engine_all + _evaluation_all + _models_all
