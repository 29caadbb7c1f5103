"""Hooks of mmdisalign, registered in mmengine's root ``HOOKS``."""
from .checkpoint_check_hook import CheckpointCheckHook
from .data_size_check_hook import DataSizeCheckHook
from .freeze_hook import DisAlignFreezeHook
from .stage2_fastpath_hook import (DisAlignStage2FastPathHook,
                                   disable_stage2_fastpath,
                                   enable_stage2_fastpath)

__all__ = [
    'CheckpointCheckHook', 'DataSizeCheckHook', 'DisAlignFreezeHook',
    'DisAlignStage2FastPathHook', 'enable_stage2_fastpath',
    'disable_stage2_fastpath'
]
