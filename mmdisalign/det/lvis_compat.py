"""Make the ``lvis`` evaluation of PyPI (0.5.3) run on numpy >= 1.24, which
removed the ``np.float`` alias it uses: ``lvis.eval`` (only it) gets a view
of numpy with the removed aliases. See docs/det.md.
"""
import types

import numpy as np

__all__ = ['patch_lvis_numpy_aliases']

#: The aliases numpy 1.24 removed, with the builtins they stood for.
_REMOVED_ALIASES = dict(
    float=float, int=int, bool=bool, complex=complex, object=object, str=str)


class _NumpyWithAliases(types.ModuleType):

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
