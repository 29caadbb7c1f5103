"""Hooks of mmdisalign, registered in mmengine's root ``HOOKS``."""
from .freeze_hook import DisAlignFreezeHook

__all__ = ['DisAlignFreezeHook']
