"""Task-agnostic utilities (no downstream library imported here)."""
from .class_freq import (CLASS_FREQ_FORMAT, CLASS_FREQ_VERSION, grw_weights,
                         load_class_freq, load_class_freq_meta,
                         save_class_freq)
from .json_file import read_json_file

__all__ = [
    'CLASS_FREQ_FORMAT', 'CLASS_FREQ_VERSION', 'grw_weights',
    'load_class_freq', 'load_class_freq_meta', 'save_class_freq',
    'read_json_file'
]
