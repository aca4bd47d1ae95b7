"""Linear traces over time as one matmul: ``y_t = decay * y_{t-1} + gain * x_t``.

The pure SNN's leaky-integrator output and the hybrids' decaying residual output are such
traces. Unrolled, ``y_t = decay^(t+1) y_init + sum_{s <= t} gain * decay^(t-s) x_s``: one
``[T, T]`` kernel matmul gives every step at once, so no time loop runs forward or backward and
nothing in it grows with T. The kernel is built on the inputs' device (no host tables), and the
trace is computed in float32 with autocast off: it is state carried over the window, which bf16
would round at every step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from event_lightning.nn.pose.precision import at_least_float32, autocast_off

__all__ = ["linear_trace"]


def linear_trace(x_seq: Tensor, decay: float, gain: float = 1.0, init: Tensor | None = None) -> Tensor:
    """``y_t = decay * y_{t-1} + gain * x_t`` for every step, with ``y_{-1} = init`` (0 if None).

    Args:
        x_seq: inputs ``[T, ...]``.
        decay: factor on the previous value per step.
        gain: factor on the input.
        init: the value before the first step ``[...]``; None = 0.

    Returns:
        ``[T, ...]`` in float32 (float64 for float64 inputs).
    """
    steps = x_seq.shape[0]
    dtype = at_least_float32(x_seq.dtype)
    t = torch.arange(steps, device=x_seq.device, dtype=dtype)
    lag = t[:, None] - t[None, :]
    kernel = torch.where(lag >= 0, gain * torch.pow(decay, lag.clamp(min=0)), 0.0)
    with autocast_off(x_seq.device.type):
        trace = (kernel @ x_seq.reshape(steps, -1).to(dtype)).view(x_seq.shape)
        if init is not None:
            trace = trace + torch.pow(decay, t + 1).view(-1, *[1] * init.dim()) * init.to(dtype)
    return trace
