"""What runs in float32 under autocast in the pose networks.

Under bf16/fp16 autocast only the big convolutions run in the low precision. The layers whose
outputs are decoded by argmax (heatmaps) or carried as state (membrane potentials, LSTM states,
the hybrids' initial states) produce float32: in bf16 (8 significant bits) neighbouring pixels
of a heatmap peak round to equal values, so the argmax ties to the first of them, and a state
rounded at every step drifts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["at_least_float32", "autocast_off", "in_float32"]


def at_least_float32(dtype: torch.dtype) -> torch.dtype:
    """float32 for bf16/fp16/float32, float64 for float64: the dtype of states and heatmaps."""
    return torch.promote_types(dtype, torch.float32)


def autocast_off(device_type: str) -> contextlib.AbstractContextManager[None]:
    """A block without autocast on ``device_type`` (nothing to switch off where autocast does not exist, e.g. meta)."""
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def in_float32(layer: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``layer(x)`` on float32 ``x`` with autocast off (float64 inputs stay float64)."""
    with autocast_off(x.device.type):
        return layer(x.to(at_least_float32(x.dtype)))
