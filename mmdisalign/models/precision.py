"""Float32 regions of stage 2 under mixed precision (``AmpOptimWrapper``).

Under autocast the frozen network runs in float16 / bfloat16; the
calibration and the GRW loss run in float32 (docs/performance.md, "Mixed
precision"): ``1 + sigma * alpha`` near 1, a margin ``beta`` added to a
logit of magnitude 10 and the class weights of the loss lose most of their
digits in 8 (bfloat16) or 11 (float16) significant bits. Without autocast
nothing here changes a tensor or an operation.
"""
import contextlib
from typing import Optional

import torch
from torch import Tensor

__all__ = ['autocast_enabled', 'fp32_region', 'to_fp32']

_LOW_PRECISION = (torch.float16, torch.bfloat16)

try:
    torch.is_autocast_enabled('cpu')
    _HAS_DEVICE_ARG = True
except TypeError:  # torch < 2.4: one function per device type
    _HAS_DEVICE_ARG = False


def autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` (``'cuda'``, ``'cpu'``,
    ...)."""
    if _HAS_DEVICE_ARG:
        return torch.is_autocast_enabled(device_type)
    if device_type == 'cpu':
        return torch.is_autocast_cpu_enabled()
    return device_type == 'cuda' and torch.is_autocast_enabled()


def fp32_region(tensor: Tensor):
    """A context that turns autocast off on the device of ``tensor`` where
    it is on (a no-op context elsewhere).

    Args:
        tensor (Tensor): A tensor on the device of the computation.

    Returns:
        A context manager.
    """
    device_type = tensor.device.type
    if autocast_enabled(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()


def to_fp32(tensor: Optional[Tensor]) -> Optional[Tensor]:
    """``tensor`` as float32 if it is float16 / bfloat16; anything else
    (float32, float64, integers, None) is returned as it is."""
    if tensor is not None and tensor.dtype in _LOW_PRECISION:
        return tensor.float()
    return tensor
