"""Hooks of mmdisalign, registered in mmengine's root ``HOOKS``."""
from .data_size_check_hook import DataSizeCheckHook
from .freeze_hook import DisAlignFreezeHook

__all__ = ['DataSizeCheckHook', 'DisAlignFreezeHook']
