"""Losses of mmdisalign, registered in mmengine's root ``MODELS``."""
from .grw_loss import GRWCrossEntropyLoss

__all__ = ['GRWCrossEntropyLoss']
