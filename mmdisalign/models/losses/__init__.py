"""Losses of mmdisalign, registered in mmengine's root ``MODELS``."""
from .grw_focal_loss import GRWFocalLoss
from .grw_loss import GRWCrossEntropyLoss, GRWLossBase

__all__ = ['GRWCrossEntropyLoss', 'GRWFocalLoss', 'GRWLossBase']
