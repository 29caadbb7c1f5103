"""mmdisalign: DisAlign (CVPR 2021) for the OpenMMLab task libraries.

Importing it registers the calibrations, the GRW loss and the hooks in
mmengine's root registries (found by bare name from every scope) and
installs the checkpoint loader of :mod:`mmdisalign.compat`. The task heads
live in ``mmdisalign.cls``, ``.seg`` and ``.det``.
"""
from . import compat  # noqa: F401  (checkpoint loader fix, first)
from .engine import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .version import __version__

__all__ = ['__version__']
