"""Task-agnostic utilities (no downstream library imported here)."""
from .class_freq import (CLASS_FREQ_FORMAT, CLASS_FREQ_VERSION, grw_weights,
                         load_class_freq, load_class_freq_meta,
                         save_class_freq)
from .misc import listed, read_json_file, unwrap_datasets

__all__ = [
    'CLASS_FREQ_FORMAT', 'CLASS_FREQ_VERSION', 'grw_weights',
    'load_class_freq', 'load_class_freq_meta', 'save_class_freq',
    'read_json_file', 'listed', 'unwrap_datasets'
]
