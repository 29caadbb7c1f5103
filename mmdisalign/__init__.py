"""mmdisalign: DisAlign (CVPR 2021) for the OpenMMLab task libraries.

Importing this package registers the task-agnostic parts (the DisAlign
calibration and its special cases, the GRW loss, the stage-2 freeze hook)
into mmengine's root registries, so every downstream scope (mmpretrain,
mmseg, mmdet) finds them by bare name. It also installs the local-file
checkpoint loader that makes mmengine checkpoints loadable on torch >= 2.6.

Task heads live in ``mmdisalign.cls``, ``mmdisalign.seg`` and
``mmdisalign.det``; each imports only its own upstream library.
"""
from .version import __version__
from . import compat  # noqa: F401  (checkpoint loader fix, first)
from .engine import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403

__all__ = ['__version__']
