"""The decay-input LIF neuron of the hybrid pose networks, as pure functions of (input, state).

Dynamics per time step (spikingjelly ``LIFNode(decay_input=True, v_reset=None)``):

* charge: ``v <- v + (x - v) / tau``
* fire:   ``s = Theta(v - v_th)`` with an ATan surrogate gradient
  ``alpha / 2 / (1 + (pi / 2 * alpha * (v - v_th))^2)``
* soft reset: ``v <- v - s * v_th`` (the reset is part of the graph unless ``detach_reset``).

An initial potential ``v0`` is the state *before* the charge step of the first time step (the
reference's ``lif_init``): the hybrid writes the CNN-derived potential there. Without ``v0`` the
state starts at zero, so every call of these functions is one freshly reset window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["LIFParams", "DecayInputLIF", "atan_spike", "leaky_integrate", "lif_multistep"]


class _ATanSpike(torch.autograd.Function):
    """Heaviside forward (``x >= 0`` fires), spikingjelly's ATan surrogate backward."""

    @staticmethod
    def forward(ctx, x: Tensor, alpha: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        alpha = ctx.alpha
        return grad_output * (alpha / 2) / (1 + (math.pi / 2 * alpha * x).square()), None


def atan_spike(x: Tensor, alpha: float = 2.0) -> Tensor:
    """``Theta(x)`` (1 where ``x >= 0``) with the ATan surrogate gradient of width ``alpha``."""
    return _ATanSpike.apply(x, alpha)


@dataclass(frozen=True)
class LIFParams:
    """Parameters of a decay-input LIF layer.

    Attributes:
        tau: membrane time constant in steps (> 1).
        v_threshold: firing threshold.
        alpha: width parameter of the ATan surrogate.
        detach_reset: cut the gradient through the soft reset (the reference keeps it).
    """

    tau: float = 2.0
    v_threshold: float = 1.0
    alpha: float = 2.0
    detach_reset: bool = False

    def __post_init__(self) -> None:
        if not self.tau > 1.0:
            raise ValueError(f"LIFParams.tau must be > 1 (v += (x - v) / tau), found {self.tau}")


def lif_multistep(x_seq: Tensor, v0: Tensor | None = None, params: LIFParams | None = None) -> tuple[Tensor, Tensor]:
    """Run a decay-input LIF layer over a sequence.

    Args:
        x_seq: input currents ``[T, ...]``.
        v0: initial membrane potential ``[...]`` set before the first charge step; ``None`` = 0.
        params: neuron parameters (``None``: :class:`LIFParams` defaults).

    Returns:
        ``(spikes [T, ...], v [...])``: the spike train and the post-reset potential after the
        last step.
    """
    params = params or LIFParams()
    v = torch.zeros_like(x_seq[0]) if v0 is None else v0
    spikes = []
    for x in x_seq:
        v = v + (x - v) / params.tau
        s = atan_spike(v - params.v_threshold, params.alpha)
        v = v - (s.detach() if params.detach_reset else s) * params.v_threshold
        spikes.append(s)
    return torch.stack(spikes), v


def leaky_integrate(x_seq: Tensor, tau: float, v0: Tensor | None = None) -> Tensor:
    """Non-spiking decay-input integrator (a LIF with infinite threshold): ``v += (x - v) / tau``.

    Args:
        x_seq: inputs ``[T, ...]``.
        tau: time constant in steps.
        v0: initial potential ``[...]``; ``None`` = 0.

    Returns:
        The potentials after every step, ``[T, ...]``: an exponential moving average of ``x_seq``.
    """
    v = torch.zeros_like(x_seq[0]) if v0 is None else v0
    out = []
    for x in x_seq:
        v = v + (x - v) / tau
        out.append(v)
    return torch.stack(out)


class DecayInputLIF(nn.Module):
    """Module wrapper of :func:`lif_multistep`; ``forward(x_seq, v0) -> (spikes, v_last)``.

    It holds no state between calls: each call is one window starting from ``v0`` (or zero).
    Forward hooks see the ``(spikes, v_last)`` tuple, so spike counters read element 0.
    """

    def __init__(self, params: LIFParams | None = None) -> None:
        super().__init__()
        self.params = params or LIFParams()

    def forward(self, x_seq: Tensor, v0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return lif_multistep(x_seq, v0, self.params)

    def extra_repr(self) -> str:
        p = self.params
        return f"tau={p.tau}, v_threshold={p.v_threshold}, alpha={p.alpha}, detach_reset={p.detach_reset}"
