"""The double causal exponential filter over frames: the hybrid guided VAE's reconstruction target.

:func:`double_exponential_trace` contracts the time axis of numpy or torch frames with
:func:`double_exponential_weights`; :func:`exponential_filter_taps` is the kernel length both use.
"""

from __future__ import annotations

import numpy as np
import torch


def exponential_filter_taps(decay: float) -> int:
    """Taps of a truncated exponential kernel: ``int(6·τ)`` with ``τ = 1/(1 − decay)`` steps.

    Evaluated in float like the original (``1 − 0.99`` is slightly above 0.01, so τ_m = 99.99…
    gives 599 taps, not 600).
    """
    if not 0 <= decay < 1:
        raise ValueError(f"decay must be in [0, 1), found {decay!r}")
    return int(6 * (1 / (1 - decay)))


def double_exponential_weights(n_steps: int, *, alpha: float, beta: float, scale: float = 50.0) -> np.ndarray:
    """Weight of each time step ``t = 0..n_steps−1`` in :func:`double_exponential_trace` -> ``[T]``.

    The hybrid guided VAE's reconstruction target (hgvae spec §2.2): two causal exponential
    filters in cascade, ``τ_s = 1/(1 − beta)`` then ``τ_m = 1/(1 − alpha)`` (time steps), each a
    kernel ``exp(−k/τ)``, ``k < int(6τ)``, normalised to sum 1 and applied with a one-step delay;
    the result is read at index ``T`` and multiplied by ``scale``. So step ``t`` weighs
    ``scale·(k_s ∗ k_m)[T − t − 2]``: the last step weighs 0.
    """
    kernels = []
    for decay in (beta, alpha):
        k = np.exp(-np.arange(exponential_filter_taps(decay)) / (1 / (1 - decay)))
        kernels.append(k / k.sum())
    cascade = np.convolve(kernels[0], kernels[1])
    lag = n_steps - 2 - np.arange(n_steps)  # index into the cascade for step t
    valid = (lag >= 0) & (lag < len(cascade))
    weights = np.zeros(n_steps)
    weights[valid] = cascade[lag[valid]]
    return scale * weights


def double_exponential_trace(
    frames: np.ndarray | torch.Tensor,
    *,
    alpha: float,
    beta: float,
    scale: float = 50.0,
    time_dim: int = 0,
) -> np.ndarray | torch.Tensor:
    """Final value of the double causal exponential filter over ``frames`` (hgvae target x*).

    Args:
        frames: counts with time on ``time_dim`` (e.g. ``[T, B, 2, 32, 32]``), numpy or torch.
        alpha: membrane decay of the last layer (τ_m = 1/(1 − alpha) steps).
        beta: synaptic decay of the last layer (τ_s = 1/(1 − beta) steps).
        scale: the original's ×50.

    Returns:
        ``frames`` with the time axis contracted by :func:`double_exponential_weights`
        (e.g. ``[B, 2, 32, 32]``), same library and float dtype (float64 for integer numpy).
    """
    n_steps = frames.shape[time_dim]
    weights = double_exponential_weights(n_steps, alpha=alpha, beta=beta, scale=scale)
    if isinstance(frames, torch.Tensor):
        dtype = frames.dtype if frames.dtype.is_floating_point else torch.get_default_dtype()
        w = torch.as_tensor(weights, dtype=dtype, device=frames.device)
        return torch.tensordot(w, frames.to(dtype), dims=([0], [time_dim]))
    frames = np.asarray(frames)
    dtype = frames.dtype if frames.dtype.kind == "f" else np.float64
    return np.tensordot(weights.astype(dtype), frames.astype(dtype, copy=False), axes=([0], [time_dim]))
