"""Segmentation metrics, registered in mmseg's ``METRICS``."""
from .head_body_tail_metric import (HeadBodyTailIoUMetric, class_pixel_ratios,
                                    group_classes)

__all__ = ['HeadBodyTailIoUMetric', 'class_pixel_ratios', 'group_classes']
