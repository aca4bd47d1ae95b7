"""Surrogate-gradient spike functions: Heaviside forward, a smooth derivative backward."""

from __future__ import annotations

import torch


class _SuperSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        return grad_output / (ctx.alpha * x.abs() + 1.0).square(), None


def superspike(x: torch.Tensor, alpha: float = 100.0) -> torch.Tensor:
    """Heaviside ``H(x) = 1 if x > 0 else 0`` with the SuperSpike surrogate derivative.

    Backward: ``dH/dx ≈ 1 / (alpha * |x| + 1)^2`` (Zenke & Ganguli 2018, §3.3.2). The norse 1.1.0
    wheel drops ``alpha`` from this expression (its gradient is ``1 / (|x| + 1)^2`` whatever alpha
    is); ``alpha=1`` reproduces it exactly.
    """
    return _SuperSpike.apply(x, float(alpha))
