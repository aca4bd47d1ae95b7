"""The DECOLLE traces as linear maps over time, and the ``[T, ...] <-> [T, N]`` views their products act on.

See :mod:`event_lightning.nn.decolle.layers` for the neuron. The two trace recursions are a fixed linear
filter of the input spikes, so ``T`` steps of them are one product with the filter's impulse
response (:func:`trace_kernels`), applied to the spikes flattened per step in memory order
(:func:`flatten_steps`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["TraceKernels", "channels_last_steps", "flatten_steps", "trace_kernels", "unflatten_steps"]


class TraceKernels(NamedTuple):
    """The traces over ``T`` steps as linear maps of the input and of the initial state ``(q0, p0)``.

    ``P[t] = sum_r membrane[t, r] S[r] + membrane_from_q[t] q0 + membrane_from_p[t] p0`` and
    ``Q[T-1] = sum_r synaptic_last[r] S[r] + synaptic_last_from_q q0``.

    Attributes:
        membrane: ``[T, T]``, lower triangular with a zero diagonal (``P`` uses the previous ``Q``).
        membrane_from_q / membrane_from_p: ``[T]``.
        synaptic_last: ``[T]``. synaptic_last_from_q: ``beta^T``.
    """

    membrane: torch.Tensor
    membrane_from_q: torch.Tensor
    membrane_from_p: torch.Tensor
    synaptic_last: torch.Tensor
    synaptic_last_from_q: float


def _two_pole_response(n: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """``g(n) = sum_{j<n} alpha^(n-1-j) beta^j`` for ``n >= 0`` (``g(0) = 0``), elementwise."""
    if alpha == beta:
        return n * torch.pow(alpha, (n - 1).clamp(min=0))
    return (torch.pow(alpha, n) - torch.pow(beta, n)) / (alpha - beta)


def trace_kernels(
    n_steps: int, alpha: float, beta: float, *, dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> TraceKernels:
    """Impulse responses of the two traces over ``n_steps`` (see :class:`TraceKernels`).

    From the recursion, an input spike at ``r`` reaches ``P[t]`` with weight
    ``(1 - alpha)(1 - beta) g(t - r)`` for ``t > r`` and ``q0`` with ``(1 - alpha) g(t + 1)``,
    where ``g(m) = (alpha^m - beta^m) / (alpha - beta)`` (``m alpha^(m-1)`` if ``alpha = beta``).
    Evaluated in float64 on ``device`` from ``arange`` (nothing is copied from the host), then cast
    to ``dtype``.
    """
    steps = torch.arange(n_steps, dtype=torch.float64, device=device)
    lag = steps[:, None] - steps[None, :]  # t - r
    gain = (1.0 - alpha) * (1.0 - beta)
    membrane = torch.where(lag > 0, gain * _two_pole_response(lag.clamp(min=0), alpha, beta), 0.0)
    return TraceKernels(
        membrane.to(dtype),
        ((1.0 - alpha) * _two_pole_response(steps + 1, alpha, beta)).to(dtype),
        torch.pow(alpha, steps + 1).to(dtype),
        ((1.0 - beta) * torch.pow(beta, n_steps - 1 - steps)).to(dtype),
        beta**n_steps,
    )


def channels_last_steps(x: torch.Tensor) -> bool:
    """Whether ``x [T, B, C, H, W]`` holds channels-last images (memory order T, B, H, W, C)."""
    return x.dim() == 5 and x.shape[2] > 1 and x.permute(0, 1, 3, 4, 2).is_contiguous()


def flatten_steps(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``[T, ...]`` -> ``[T, N]`` in memory order (a view for channels-last or contiguous ``x``):
    the trace products act on each ``(b, c, h, w)`` alike, so any fixed order of them will do."""
    if channels_last:
        return x.permute(0, 1, 3, 4, 2).reshape(x.shape[0], -1)
    return x.reshape(x.shape[0], -1)


def unflatten_steps(flat: torch.Tensor, shape: torch.Size, channels_last: bool) -> torch.Tensor:
    """The inverse of :func:`flatten_steps`: ``[T', N]`` -> ``[T', *shape]`` (a view)."""
    if channels_last:
        batch, channels, height, width = shape
        return flat.view(flat.shape[0], batch, height, width, channels).permute(0, 1, 4, 2, 3)
    return flat.view(flat.shape[0], *shape)
