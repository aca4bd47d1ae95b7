"""The decay-input LIF neuron of the hybrid pose networks, as pure functions of (input, state).

Dynamics per time step (spikingjelly ``LIFNode(decay_input=True, v_reset=None)``):

* charge: ``v <- v + (x - v) / tau``
* fire:   ``s = Theta(v - v_th)`` with an ATan surrogate gradient
  ``alpha / 2 / (1 + (pi / 2 * alpha * (v - v_th))^2)``
* soft reset: ``v <- v - s * v_th`` (the reset is part of the graph unless ``detach_reset``).

An initial potential ``v0`` is the state *before* the charge step of the first time step (the
reference's ``lif_init``): the hybrid writes the CNN-derived potential there. Without ``v0`` the
state starts at zero, so every call of these functions is one freshly reset window.

The membrane potential is float32 (float64 for float64 inputs) whatever the input currents are:
under bf16 autocast the currents come out of bf16 convolutions, and a bf16 potential would round
away the small charges near the threshold that decide a spike. One time step is
:class:`DecayInputLIFCell`, which ``compile: true`` compiles (its graph does not depend on the
window length); :func:`lif_multistep` loops a compiled cell over time in Python, and runs an eager
window as one autograd node with a hand-written backward (:class:`_FusedLIF`: no per-step graph,
11 % of a pose SNN training step on the CPU; gradients equal the step loop's, tested). On the CPU
that node's two loops are compiled (:mod:`~event_lightning.nn.pose.lif_kernels`, one pass over
the neurons per direction, bit-identical to the torch loops, which run where numba cannot load).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import torch
from torch import Tensor, nn

from event_lightning.nn.cpu_only import cpu_only
from event_lightning.nn.pose.cpu_kernels import cpu_kernels
from event_lightning.nn.pose.precision import at_least_float32
from event_lightning.nn.pose.traces import linear_trace

__all__ = [
    "DecayInputLIF",
    "DecayInputLIFCell",
    "LIFParams",
    "atan_spike",
    "leaky_integrate",
    "lif_multistep",
    "lif_step",
]


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


def lif_step(x: Tensor, v: Tensor, params: LIFParams) -> tuple[Tensor, Tensor]:
    """One step of a decay-input LIF: charge with ``x``, fire, soft reset.

    Args:
        x: input current ``[...]`` (any float dtype; promoted to the potential's dtype).
        v: membrane potential before the step ``[...]``, float32 or float64.
        params: neuron parameters.

    Returns:
        ``(spikes, v)`` after the step, both in ``v``'s dtype.
    """
    v = v + (x.to(v.dtype) - v) / params.tau
    s = atan_spike(v - params.v_threshold, params.alpha)
    return s, v - (s.detach() if params.detach_reset else s) * params.v_threshold


def _zero_state(currents: Tensor) -> Tensor:
    """A zero state ``[...]`` for ``currents [T, ...]``.

    It requires grad when the currents do, like every later state (which depends on them), so a
    compiled step cell sees one kind of state at every step and keeps a single training graph.
    """
    requires_grad = torch.is_grad_enabled() and currents.requires_grad
    return torch.zeros(
        currents.shape[1:], dtype=at_least_float32(currents.dtype), device=currents.device, requires_grad=requires_grad
    )


class _FusedLIF(torch.autograd.Function):
    """The whole window of :func:`lif_step` as one autograd node, on flat ``[T, N]`` currents.

    The forward loop builds no per-step graph and keeps only the charged potentials ``[T, N]``
    (what the surrogate needs); the backward loop walks time in reverse with the same surrogate:
    ``dL/dh_t = dL/dv_t + (dL/ds_t - v_th dL/dv_t) * sg'(h_t - v_th)`` (no reset term with
    ``detach_reset``), ``dL/dx_t = dL/dh_t / tau``, ``dL/dv_{t-1} = dL/dh_t (1 - 1 / tau)``.
    """

    @staticmethod
    def forward(ctx, x_seq: Tensor, v0: Tensor, params: LIFParams) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        charged = torch.empty(x_seq.shape, dtype=v0.dtype, device=v0.device)
        spikes = torch.empty_like(charged)
        kernels = _compiled_loops(x_seq, v0)
        if kernels is not None:
            v = _compiled_forward(kernels, x_seq, v0, params, charged, spikes)
        else:
            v = v0
            for t, x in enumerate(x_seq):
                h = torch.add(v, (x.to(v.dtype) - v) / params.tau, out=charged[t])
                spikes[t] = (h - params.v_threshold) >= 0
                v = h - spikes[t] * params.v_threshold
        ctx.save_for_backward(charged)
        ctx.params, ctx.x_dtype, ctx.kernels = params, x_seq.dtype, kernels
        return spikes, v

    @staticmethod
    def backward(ctx, grad_spikes: Tensor, grad_v: Tensor) -> tuple[Tensor, Tensor, None]:  # type: ignore[override]
        (charged,) = ctx.saved_tensors
        p = ctx.params
        keep, reset = 1.0 - 1.0 / p.tau, 0.0 if p.detach_reset else p.v_threshold
        grad_x = torch.empty_like(charged)
        if ctx.kernels is not None:
            gv = _compiled_backward(ctx.kernels, charged, grad_spikes, grad_v, p, grad_x)
            return grad_x.to(ctx.x_dtype), gv, None
        gv = grad_v
        for t in range(charged.shape[0] - 1, -1, -1):
            surrogate = (p.alpha / 2) / (1 + (math.pi / 2 * p.alpha * (charged[t] - p.v_threshold)).square())
            gh = gv + (grad_spikes[t] - reset * gv) * surrogate
            torch.div(gh, p.tau, out=grad_x[t])
            gv = gh * keep
        return grad_x.to(ctx.x_dtype), gv, None


def lif_cpu_kernels() -> ModuleType | None:
    """The compiled LIF loops (:mod:`event_lightning.nn.pose.lif_kernels`), or None where they cannot load."""
    return cpu_kernels("lif_kernels")


def _compiled_loops(x_seq: Tensor, v0: Tensor) -> ModuleType | None:
    """The compiled loops for a window they can run (CPU, currents in the potential's float32 or
    float64), else None (the torch loop: accelerators, bf16 currents)."""
    if x_seq.device.type != "cpu" or x_seq.dtype != v0.dtype or v0.dtype not in (torch.float32, torch.float64):
        return None
    return lif_cpu_kernels()


def _consts(kernels: ModuleType, params: LIFParams, dtype: torch.dtype) -> np.ndarray:
    reset = 0.0 if params.detach_reset else params.v_threshold
    numpy_dtype = np.float32 if dtype == torch.float32 else np.float64
    return kernels.lif_consts(params.tau, params.v_threshold, params.alpha, reset, numpy_dtype)


@cpu_only
def _compiled_forward(
    kernels: ModuleType, x_seq: Tensor, v0: Tensor, params: LIFParams, charged: Tensor, spikes: Tensor
) -> Tensor:
    """The forward loop in one compiled pass: fills ``charged`` and ``spikes``, returns the last potential."""
    v = v0.detach().clone()
    x = x_seq.detach().contiguous()
    kernels.lif_forward(x.numpy(), charged.numpy(), spikes.numpy(), v.numpy(), _consts(kernels, params, v.dtype))
    return v


@cpu_only
def _compiled_backward(
    kernels: ModuleType, charged: Tensor, grad_spikes: Tensor, grad_v: Tensor, params: LIFParams, grad_x: Tensor
) -> Tensor:
    """The backward loop in one compiled pass: fills ``grad_x``, returns the initial potential's gradient."""
    gv = grad_v.detach().to(charged.dtype, memory_format=torch.contiguous_format, copy=True)
    gs = grad_spikes.detach().to(charged.dtype).contiguous()
    kernels.lif_backward(charged.numpy(), gs.numpy(), grad_x.numpy(), gv.numpy(), _consts(kernels, params, gv.dtype))
    return gv


def lif_multistep(
    x_seq: Tensor,
    v0: Tensor | None = None,
    params: LIFParams | None = None,
    cell: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None,
) -> tuple[Tensor, Tensor]:
    """Run a decay-input LIF layer over a sequence.

    Args:
        x_seq: input currents ``[T, ...]``.
        v0: initial membrane potential ``[...]`` set before the first charge step; ``None`` = 0.
        params: neuron parameters (``None``: :class:`LIFParams` defaults).
        cell: the step ``(x, v) -> (spikes, v)`` to loop over time (a compiled
            :class:`DecayInputLIFCell`); ``None`` or an uncompiled cell: the fused window
            (:class:`_FusedLIF`) with ``params`` or the cell's parameters, the values and
            gradients of a loop of :func:`lif_step`.

    Returns:
        ``(spikes [T, ...], v [...])``: the spike train and the post-reset potential after the
        last step, float32 (float64 for float64 currents).
    """
    params = params or LIFParams()
    step = cell or functools.partial(lif_step, params=params)
    # The step is pointwise: it runs on flat [N] vectors, one dynamic dimension for every layer's
    # shape, so a compiled cell has one graph. The steps x are views into the tensor that holds
    # x_seq, whose sizes the graph sees through x._base: they are dynamic too. v is never a view
    # (a copy of v0), so every step passes the same kind of state.
    base = x_seq if x_seq._base is None else x_seq._base
    for dim in range(base.dim()):
        torch._dynamo.maybe_mark_dynamic(base, dim)
    flat = x_seq.reshape(x_seq.shape[0], -1)
    dtype = at_least_float32(x_seq.dtype)
    v = _zero_state(flat) if v0 is None else v0.reshape(-1).to(dtype, copy=True)
    torch._dynamo.maybe_mark_dynamic(v, 0)
    if cell is None or (isinstance(cell, DecayInputLIFCell) and cell._compiled_call_impl is None):
        # eager: one autograd node for the window (a compiled cell keeps its step loop, one graph)
        spikes, v = _FusedLIF.apply(flat, v, cell.params if cell is not None else params)
        return spikes.view(x_seq.shape), v.view(x_seq.shape[1:])
    spikes = []
    for x in flat:
        torch._dynamo.maybe_mark_dynamic(x, 0)
        s, v = step(x, v)
        spikes.append(s)
    return torch.stack(spikes).view(x_seq.shape), v.view(x_seq.shape[1:])


def leaky_integrate(x_seq: Tensor, tau: float, v0: Tensor | None = None) -> Tensor:
    """Non-spiking decay-input integrator (a LIF with infinite threshold): ``v += (x - v) / tau``.

    Args:
        x_seq: inputs ``[T, ...]``.
        tau: time constant in steps.
        v0: initial potential ``[...]``; ``None`` = 0.

    Returns:
        The potentials after every step, ``[T, ...]`` in float32 (float64 for float64 inputs):
        an exponential moving average of ``x_seq``, computed as one matmul over time
        (:func:`~event_lightning.nn.pose.traces.linear_trace`).
    """
    return linear_trace(x_seq, 1 - 1 / tau, 1 / tau, v0)


class DecayInputLIFCell(nn.Module):
    """One LIF time step as a module, ``forward(x, v) -> (spikes, v)`` (:func:`lif_step`).

    No parameters: its graph is the same for every layer and every window length, so it is what
    ``compile: true`` compiles.
    """

    def __init__(self, params: LIFParams) -> None:
        super().__init__()
        self.params = params

    def forward(self, x: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        return lif_step(x, v, self.params)


class DecayInputLIF(nn.Module):
    """Module wrapper of :func:`lif_multistep`; ``forward(x_seq, v0) -> (spikes, v_last)``.

    It holds no state between calls: each call is one window starting from ``v0`` (or zero).
    Forward hooks see the ``(spikes, v_last)`` tuple, so spike counters read element 0. The time
    loop runs here, in Python, around :attr:`cell` (the part ``compile: true`` compiles), so the
    hooks of this module never run inside a compiled graph.
    """

    def __init__(self, params: LIFParams | None = None) -> None:
        super().__init__()
        self.params = params or LIFParams()
        self.cell = DecayInputLIFCell(self.params)

    def forward(self, x_seq: Tensor, v0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return lif_multistep(x_seq, v0, self.params, self.cell)

    def extra_repr(self) -> str:
        p = self.params
        return f"tau={p.tau}, v_threshold={p.v_threshold}, alpha={p.alpha}, detach_reset={p.detach_reset}"
