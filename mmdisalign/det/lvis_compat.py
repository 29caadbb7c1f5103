"""Make the ``lvis`` evaluation of PyPI (0.5.3) run on numpy >= 1.24.

``lvis.eval.LVISEval.accumulate`` of the last ``lvis`` release on PyPI
calls ``astype(dtype=np.float)``; numpy 1.24 removed the ``np.float`` alias
(deprecated since 1.20), so every LVIS evaluation, including mmdet's
``LVISMetric``, fails with ``AttributeError: module 'numpy' has no
attribute 'float'``. The fix is on the lvis-api main branch but was never
released. :func:`patch_lvis_numpy_aliases` gives the ``lvis.eval`` module
(and only it) a view of numpy that still has the removed aliases, with
their old meaning (``np.float`` is the builtin ``float``, i.e. float64).
Importing :mod:`mmdisalign.det` applies it.
"""
import types

import numpy as np

__all__ = ['patch_lvis_numpy_aliases']

#: The aliases numpy 1.24 removed, with the builtins they stood for.
_REMOVED_ALIASES = dict(
    float=float, int=int, bool=bool, complex=complex, object=object, str=str)


class _NumpyWithAliases(types.ModuleType):
    """numpy, plus the builtin aliases that numpy 1.24 removed."""

    def __init__(self) -> None:
        super().__init__(np.__name__, np.__doc__)
        for name, value in _REMOVED_ALIASES.items():
            setattr(self, name, value)

    def __getattr__(self, name: str):
        return getattr(np, name)


def patch_lvis_numpy_aliases() -> bool:
    """Patch ``lvis.eval`` if it needs it.

    Returns:
        bool: True if ``lvis.eval`` now sees the aliases through the patch,
        False if nothing was needed (no ``lvis``, or a numpy that still has
        ``np.float``).
    """
    try:
        import lvis.eval as lvis_eval
    except ImportError:
        return False
    if isinstance(lvis_eval.np, _NumpyWithAliases):
        return True
    if hasattr(np, 'float'):
        return False
    lvis_eval.np = _NumpyWithAliases()
    return True
