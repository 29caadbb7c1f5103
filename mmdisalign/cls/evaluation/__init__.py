from .long_tail_accuracy import LongTailAccuracy, long_tail_groups

__all__ = ['LongTailAccuracy', 'long_tail_groups']
