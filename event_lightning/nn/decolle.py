"""DECOLLE-style LIF layers as used by the Hybrid Guided VAE (time-first ``[T, B, ...]``).

The neuron is the one vendored in the HG-VAE reference code, not the PyPI ``decolle`` package.
Per layer, with input spikes ``S_in[t]``, membrane decay ``alpha`` and synaptic decay ``beta``::

    Q[t] = beta  * Q[t-1] + (1 - beta)  * S_in[t]      synaptic trace
    P[t] = alpha * P[t-1] + (1 - alpha) * Q[t-1]      membrane trace (uses the PREVIOUS Q)
    U[t] = W * P[t] + b                               Conv2d or Linear on the trace
    S[t] = H(maxpool(U[t]) > 0)                       fast-sigmoid surrogate, slope 10

There is no reset and no refractory term, so a layer is a fixed linear filter of its input
followed by a static nonlinearity. :meth:`DecolleLIFLayer.forward` therefore computes the traces
of all ``T`` steps as one product with the filter's impulse response over time
(:func:`trace_kernels`: ``P = K @ S`` plus the decay of the initial state) and applies the
convolution to all ``T * B`` traces in one call. The result equals stepping
:meth:`DecolleLIFLayer.step` ``T`` times to float rounding (tested); there is no loop over time,
so a compiled graph does not grow with ``T`` and the backward pass is one more product (``K^T``).
On a CPU in eager mode (no autocast) a conv layer instead runs traces, conv and max-pool in blocks
of steps that carry the traces' state from one block to the next (:class:`_BlockedConvPotentials`):
the same values and gradients, with less trace arithmetic and no ``[T * B, ...]`` temporaries that
glibc would map and page-fault in afresh at every step.
In 1-ms bins the time constants are ``tau_m = 1 / (1 - alpha)`` and ``tau_s = 1 / (1 - beta)``.

Precision: traces, membrane potentials and spikes are at least float32 whatever the input dtype.
The trace products run with autocast off; under bf16/fp16 autocast only the conv/linear runs in
low precision, and its output ``U`` is converted back to float32 before pooling and thresholding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from event_lightning.nn.surrogate import superspike

__all__ = [
    "DecolleEncoder",
    "DecolleEncoderConfig",
    "DecolleLIFLayer",
    "LIFState",
    "TraceKernels",
    "fast_sigmoid_spike",
    "lif_trace_step",
    "trace_kernels",
]


def fast_sigmoid_spike(u: torch.Tensor, slope: float = 10.0) -> torch.Tensor:
    """Heaviside ``H(u > 0)`` forward; backward ``dS/dU = 1 / (1 + slope * |u|)^2`` (decolle FastSigmoid).

    decolle's fast-sigmoid surrogate is the SuperSpike surrogate with ``alpha = slope``.
    """
    return superspike(u, slope)


_CPU_BLOCK_BYTES = 16 << 20
"""Temporaries of at most this size come from the heap: glibc maps larger ones afresh (above its
mmap threshold, 32 MiB at most) and every 4 KiB page of them faults in at first touch."""


class _SpikesWeightedOverTime(torch.autograd.Function):
    """``sum_t w[t] H(u[t])`` over the first dim of ``u [T, ...]``, fast-sigmoid surrogate for ``dH/du``.

    Equal to ``w @ fast_sigmoid_spike(u)`` with autograd (to float rounding), with fewer ``[T, ...]``
    buffers: the forward keeps no spikes, and the backward turns the denominator ``(1 + slope |u|)^2``
    into ``w[t] g / (1 + slope |u|)^2`` in its own buffer, where autograd fills three (the product
    ``w[t] g``, the denominator, the quotient). Used on the HG-VAE's last conv layer, the
    largest spiking tensor of the encoder.
    """

    @staticmethod
    def forward(ctx, u: torch.Tensor, weights: torch.Tensor, slope: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(u, weights)
        ctx.slope = slope
        channels_last = _channels_last_steps(u)
        flat = _flatten_steps(u, channels_last)
        steps, width = flat.shape
        # On a CPU, eager: the spikes in blocks of steps of at most _CPU_BLOCK_BYTES, which the heap
        # reuses; one [T, ...] buffer would be mapped afresh and page-faulted in at every call.
        # Elsewhere one product (a compiled graph does not grow with T).
        block = steps
        if u.device.type == "cpu" and not torch.compiler.is_compiling():
            block = max(1, _CPU_BLOCK_BYTES // max(1, width * u.element_size()))
        summed = flat.new_zeros(1, width)
        for start in range(0, steps, block):
            part = flat[start : start + block]
            # the comparison written straight into a float buffer: a third faster than bool then float
            summed.addmm_(weights[None, start : start + block], torch.gt(part, 0, out=torch.empty_like(part)))
        return _unflatten_steps(summed, u.shape[1:], channels_last)[0]

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        u, weights = ctx.saved_tensors
        # in place on the denominator (not ``out=``, which TorchDynamo refuses on channels-last buffers)
        grad_u = u.abs().mul_(ctx.slope).add_(1.0).square_().reciprocal_().mul_(grad[None])
        return grad_u.mul_(weights.view(-1, *[1] * (u.dim() - 1))), None, None


def _cpu_block_steps(step_bytes: int) -> int:
    """Steps per block so that a block's ``[steps, ...]`` temporary of ``step_bytes`` per step stays
    within :data:`_CPU_BLOCK_BYTES`."""
    return max(1, _CPU_BLOCK_BYTES // max(1, step_bytes))


class _BlockedConvPotentials(torch.autograd.Function):
    """The pooled membrane potentials ``maxpool(conv(P) + b)`` of a conv LIF layer, computed in
    blocks of time steps (CPU, eager), the traces ``P`` carried from block to block by the
    recursion's state.

    A block of ``n`` steps starting from the state ``(q, p)`` left by the block before has
    ``P_blk = K_n S_blk + m_q q + m_p p`` and hands on ``q' = s_n . S_blk + beta^n q``,
    ``p' = P_blk[-1]`` (:func:`trace_kernels` of ``n`` steps). The backward runs the blocks in
    reverse with the adjoint of that state: ``dS_blk = K_n^T dP_blk + s_n dq'``,
    ``dq = m_q . dP_blk + beta^n dq'``, ``dp = m_p . dP_blk`` (``dp'`` joins ``dP_blk[-1]``).

    The same values and gradients as the whole-sequence product, conv and max-pool under autograd
    (to float rounding), with less work and memory: each block's trace product reads only its
    own steps (``T n N`` multiply-adds instead of ``T^2 N``), and no ``[T, ...]`` tensor other than
    the input spikes, the pooled output and the input's gradient is ever made. The traces, the
    unpooled conv output and its gradient exist one block at a time (within ``_CPU_BLOCK_BYTES``,
    so the heap recycles them); the backward recomputes a block's traces from its spikes and the
    state saved at its start. Whole-sequence ``[T * B, ...]`` buffers are mapped afresh by glibc
    and page-faulted in at every call.

    Inputs: ``flat [T, N]`` the spikes in memory order (:func:`_flatten_steps`), ``weight``,
    ``bias``, the initial state ``q0, p0 [N]`` (no gradient, as in :meth:`DecolleLIFLayer.traces`),
    ``layout = (shape [B, C, H, W], channels_last)``, the conv module (its hyperparameters), the
    pool size and the decays.
    """

    @staticmethod
    def forward(ctx, flat, weight, bias, q0, p0, layout, conv, pool, alpha, beta):  # type: ignore[override]
        shape, channels_last = layout
        steps, batch = flat.shape[0], shape[0]
        out_channels, (height, width) = weight.shape[0], shape[2:]
        block = _cpu_block_steps(batch * out_channels * height * width * flat.element_size())
        kernels = _BlockKernels(alpha, beta, flat)
        out, indices, starts = None, [], []
        q, p = q0, p0
        for first in range(0, steps, block):
            last = min(first + block, steps)
            starts += [q, p]
            traces, q = kernels.advance(flat[first:last], q, p)
            p = traces[-1].clone()
            u = F.conv2d(
                _conv_input(traces, layout), weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups
            )
            if pool > 1:
                u, where = F.max_pool2d(u, pool, return_indices=True)
                indices.append(where)
            if out is None:
                out = torch.empty(
                    (steps * batch, *u.shape[1:]), dtype=u.dtype, device=u.device, memory_format=torch.channels_last
                )
            out[first * batch : last * batch] = u
        ctx.save_for_backward(flat, weight, bias, *starts, *indices)
        ctx.n_starts, ctx.layout, ctx.conv, ctx.pool, ctx.block = len(starts), layout, conv, pool, block
        ctx.decays, ctx.unpooled_size = (alpha, beta), (height, width)
        return out.view(steps, batch, *out.shape[1:])

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        flat, weight, bias, *saved = ctx.saved_tensors
        starts, indices = saved[: ctx.n_starts], saved[ctx.n_starts :]
        shape, channels_last = ctx.layout
        steps, batch = flat.shape[0], shape[0]
        conv, kernels = ctx.conv, _BlockKernels(*ctx.decays, flat)
        grad = grad.reshape(steps * batch, *grad.shape[2:])
        grad_weight = torch.zeros_like(weight)
        grad_bias = None if bias is None else torch.zeros_like(bias)
        grad_flat = torch.empty_like(flat) if ctx.needs_input_grad[0] else None
        grad_q = grad_p_end = None  # adjoints of the state handed to the next block
        for k, first in reversed(list(enumerate(range(0, steps, ctx.block)))):
            last = min(first + ctx.block, steps)
            traces, _ = kernels.advance(flat[first:last], starts[2 * k], starts[2 * k + 1])
            grad_u = grad[first * batch : last * batch]
            if ctx.pool > 1:
                # max-pool's own backward (only the shape of its input is read): max_unpool2d gives the
                # same values but refuses to run under torch.use_deterministic_algorithms(True)
                unpooled = torch.empty(
                    (grad_u.shape[0], grad_u.shape[1], *ctx.unpooled_size),
                    dtype=grad_u.dtype,
                    memory_format=torch.channels_last,
                )
                grad_u = torch.ops.aten.max_pool2d_with_indices_backward(
                    grad_u, unpooled, [ctx.pool] * 2, [ctx.pool] * 2, [0, 0], [1, 1], False, indices[k]
                )
            grad_traces, grad_w, grad_b = torch.ops.aten.convolution_backward(
                grad_u.contiguous(memory_format=torch.channels_last),
                _conv_input(traces, ctx.layout),
                weight,
                None if bias is None else [bias.shape[0]],
                conv.stride,
                conv.padding,
                conv.dilation,
                False,
                [0, 0],
                conv.groups,
                [grad_flat is not None, True, bias is not None],
            )
            grad_weight += grad_w
            if grad_bias is not None:
                grad_bias += grad_b
            if grad_flat is not None:
                grad_traces = _flatten_steps(grad_traces.view(last - first, *shape), channels_last)
                grad_q, grad_p_end = kernels.adjoint(grad_traces, grad_q, grad_p_end, grad_flat[first:last])
        return grad_flat, grad_weight, grad_bias, None, None, None, None, None, None, None


class _BlockKernels:
    """:func:`trace_kernels` per block length (the last block may be shorter), and one block's
    traces and their adjoint (see :class:`_BlockedConvPotentials`)."""

    def __init__(self, alpha: float, beta: float, like: torch.Tensor) -> None:
        self.alpha, self.beta, self.like = alpha, beta, like
        self._by_length: dict[int, TraceKernels] = {}

    def __call__(self, steps: int) -> TraceKernels:
        if steps not in self._by_length:
            like = self.like
            self._by_length[steps] = trace_kernels(steps, self.alpha, self.beta, dtype=like.dtype, device=like.device)
        return self._by_length[steps]

    def advance(self, spikes: torch.Tensor, q: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``spikes [n, N]`` from the state ``(q, p)`` -> (traces ``P [n, N]``, the synaptic trace after them)."""
        k = self(spikes.shape[0])
        traces = k.membrane @ spikes
        traces.addr_(k.membrane_from_q, q).addr_(k.membrane_from_p, p)
        q_next = torch.addmv(q, spikes.T, k.synaptic_last, beta=k.synaptic_last_from_q)
        return traces, q_next

    def adjoint(
        self,
        grad_traces: torch.Tensor,
        grad_q_next: torch.Tensor | None,
        grad_p_next: torch.Tensor | None,
        grad_spikes: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Writes ``dL/dS`` of a block into ``grad_spikes [n, N]`` from ``dL/dP [n, N]`` and the adjoints of
        the state it handed on; returns the adjoints ``(dq, dp)`` of the state it started from."""
        k = self(grad_traces.shape[0])
        if grad_p_next is not None:
            grad_traces[-1] += grad_p_next
        torch.mm(k.membrane.T, grad_traces, out=grad_spikes)
        grad_q = k.membrane_from_q @ grad_traces
        if grad_q_next is not None:
            grad_spikes.addr_(k.synaptic_last, grad_q_next)
            grad_q.add_(grad_q_next, alpha=k.synaptic_last_from_q)
        return grad_q, k.membrane_from_p @ grad_traces


def _conv_input(traces: torch.Tensor, layout: tuple[torch.Size, bool]) -> torch.Tensor:
    """Traces ``[n, N]`` (memory order) as channels-last conv input ``[n * B, C, H, W]``."""
    shape, channels_last = layout
    p = _unflatten_steps(traces, shape, channels_last)
    return p.reshape(-1, *shape[1:]).contiguous(memory_format=torch.channels_last)


def _has_forward_hooks(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks)


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """Counts (uint8/int16), bf16 or fp16 as float32; float32 and float64 as they are."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _channels_last_steps(x: torch.Tensor) -> bool:
    """Whether ``x [T, B, C, H, W]`` holds channels-last images (memory order T, B, H, W, C)."""
    return x.dim() == 5 and x.shape[2] > 1 and x.permute(0, 1, 3, 4, 2).is_contiguous()


def _flatten_steps(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``[T, ...]`` -> ``[T, N]`` in memory order (a view for channels-last or contiguous ``x``):
    the trace products act on each ``(b, c, h, w)`` alike, so any fixed order of them will do."""
    if channels_last:
        return x.permute(0, 1, 3, 4, 2).reshape(x.shape[0], -1)
    return x.reshape(x.shape[0], -1)


def _unflatten_steps(flat: torch.Tensor, shape: torch.Size, channels_last: bool) -> torch.Tensor:
    """The inverse of :func:`_flatten_steps`: ``[T', N]`` -> ``[T', *shape]`` (a view)."""
    if channels_last:
        batch, channels, height, width = shape
        return flat.view(flat.shape[0], batch, height, width, channels).permute(0, 1, 4, 2, 3)
    return flat.view(flat.shape[0], *shape)


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


class LIFState(NamedTuple):
    """State of one DECOLLE LIF layer: traces ``q`` (synaptic) and ``p`` (membrane), shaped like the input.

    ``p = None`` stands for an all-zero membrane trace (the warm-up state); the sequence methods
    (:meth:`DecolleLIFLayer.traces`, :meth:`~DecolleLIFLayer.last_trace`) accept it.
    """

    q: torch.Tensor
    p: torch.Tensor | None


def lif_trace_step(s_in: torch.Tensor, state: LIFState, alpha: float, beta: float) -> LIFState:
    """One step of the traces (a pure function): ``Q' = bQ + (1-b)S``, ``P' = aP + (1-a)Q`` (old Q)."""
    q = beta * state.q + (1.0 - beta) * s_in
    p = alpha * state.p + (1.0 - alpha) * state.q
    return LIFState(q, p)


class DecolleLIFLayer(nn.Module):
    """A DECOLLE LIF layer around a ``Conv2d`` or ``Linear`` ``base_layer``.

    Args:
        base_layer: the synaptic weights ``W`` (and bias ``b``) applied to the membrane trace.
        alpha: membrane decay per step (``tau_m = 1 / (1 - alpha)`` steps).
        beta: synaptic decay per step.
        pool_size: max-pool window applied to ``U`` before thresholding (1 = none; conv only).
        surrogate_slope: slope of the fast-sigmoid surrogate gradient.
    """

    def __init__(
        self,
        base_layer: nn.Conv2d | nn.Linear,
        alpha: float,
        beta: float,
        pool_size: int = 1,
        surrogate_slope: float = 10.0,
    ) -> None:
        super().__init__()
        for name, value in (("alpha", alpha), ("beta", beta)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"DecolleLIFLayer: {name} must be in [0, 1), found {value}")
        if pool_size < 1:
            raise ValueError(f"DecolleLIFLayer: pool_size must be >= 1, found {pool_size}")
        if pool_size > 1 and not isinstance(base_layer, nn.Conv2d):
            raise ValueError("DecolleLIFLayer: pooling needs a Conv2d base layer")
        self.base_layer = base_layer
        self.alpha, self.beta = float(alpha), float(beta)
        self.pool_size = int(pool_size)
        self.surrogate_slope = float(surrogate_slope)

    def zero_state(self, s_in: torch.Tensor) -> LIFState:
        """All-zero traces shaped like one input step ``s_in`` (at least float32)."""
        zeros = torch.zeros_like(s_in, dtype=torch.promote_types(s_in.dtype, torch.float32))
        return LIFState(zeros, zeros)

    def _membrane(self, p: torch.Tensor) -> torch.Tensor:
        # the traces are at least float32; weights held in bf16 ("bf16-true") take the trace in their dtype
        p = p.to(self.base_layer.weight.dtype)
        if p.device.type == "cpu" and p.dim() == 4:
            # On a CPU the conv, its backward and the max-pool run 1.5-3x faster on channels-last
            # images, with the same values; the spikes keep that layout (the next trace product reads
            # them whatever their layout).
            p = p.contiguous(memory_format=torch.channels_last)
        u = self.base_layer(p)
        u = F.max_pool2d(u, self.pool_size) if self.pool_size > 1 else u
        # under autocast the conv/linear output is bf16/fp16; the threshold acts on float32 (max is exact)
        return _at_least_float32(u)

    def resting_spikes(self, s_in: torch.Tensor) -> torch.Tensor:
        """The output spikes of a step whose membrane trace is zero (``U = b``) for input ``s_in``
        ``[B, C, H, W]`` or ``[B, F]``: ``H(b)`` per channel, shaped like the layer's output; no gradient.
        """
        bias = self.base_layer.bias.detach()
        fired = (bias > 0).to(s_in.dtype)
        if isinstance(self.base_layer, nn.Linear):
            return fired.expand(s_in.shape[0], -1)
        height, width = (size // self.pool_size for size in s_in.shape[-2:])
        return fired[:, None, None].expand(s_in.shape[0], -1, height, width)

    def step(self, s_in: torch.Tensor, state: LIFState | None = None) -> tuple[torch.Tensor, torch.Tensor, LIFState]:
        """One time step. ``s_in`` is ``[B, C, H, W]`` (conv) or ``[B, F]`` (dense).

        Returns ``(spikes, u, new_state)``; ``u`` is the pooled membrane potential.
        """
        s_in = _at_least_float32(s_in)
        state = self.zero_state(s_in) if state is None else state
        state = lif_trace_step(s_in, state, self.alpha, self.beta)
        u = self._membrane(state.p)
        return fast_sigmoid_spike(u, self.surrogate_slope), u, state

    def _kernels(self, s_in: torch.Tensor) -> TraceKernels:
        return trace_kernels(s_in.shape[0], self.alpha, self.beta, dtype=s_in.dtype, device=s_in.device)

    def traces(self, s_in: torch.Tensor, state: LIFState | None = None) -> tuple[torch.Tensor, LIFState]:
        """Membrane traces ``P [T, B, ...]`` for a whole sequence, and the final state.

        The initial state carries no gradient back (the reference detaches it too). ``P`` has the
        memory layout of ``s_in`` (channels-last spikes give channels-last traces).
        """
        s_in = _at_least_float32(s_in)
        kernels = self._kernels(s_in)
        channels_last = _channels_last_steps(s_in)
        flat = _flatten_steps(s_in, channels_last)
        with torch.autocast(s_in.device.type, enabled=False):
            p = kernels.membrane @ flat
            q_last = kernels.synaptic_last[None] @ flat
            if state is not None:
                # rank-one updates in place: the mm's backward does not need its output, and two
                # [T, N] temporaries per term (product, sum) would cost as much as the mm itself
                q0 = _flatten_steps(state.q.detach()[None], channels_last)[0]
                p.addr_(kernels.membrane_from_q, q0)
                q_last = q_last + kernels.synaptic_last_from_q * q0
                if state.p is not None:
                    p.addr_(kernels.membrane_from_p, _flatten_steps(state.p.detach()[None], channels_last)[0])
        p = _unflatten_steps(p, s_in.shape[1:], channels_last)
        return p, LIFState(_unflatten_steps(q_last, s_in.shape[1:], channels_last)[0], p[-1])

    def last_trace(self, s_in: torch.Tensor, state: LIFState | None = None) -> torch.Tensor:
        """``P[T-1]`` alone, ``[B, ...]``: what a layer read only at the last step needs.

        A dense layer also takes a conv layer's spikes ``[T, B, C, H, W]`` as they are: the trace is
        flattened per sample after the sum over time (the state is then ``[B, C * H * W]``).
        """
        s_in = _at_least_float32(s_in)
        kernels = self._kernels(s_in)
        channels_last = _channels_last_steps(s_in)
        with torch.autocast(s_in.device.type, enabled=False):
            p = kernels.membrane[-1:] @ _flatten_steps(s_in, channels_last)
            p = _unflatten_steps(p, s_in.shape[1:], channels_last)[0]
            return self._with_initial_state(p, state, kernels)

    def last_trace_of_spikes(self, u_in: torch.Tensor, slope: float, state: LIFState | None = None) -> torch.Tensor:
        """:meth:`last_trace` of the spikes ``fast_sigmoid_spike(u_in, slope)`` of the layer before,
        from its pooled membrane potentials ``u_in [T, B, ...]`` (at least float32).

        The same values and gradients (to float rounding); the spikes are never kept and their
        gradient costs one ``[T, ...]`` buffer instead of three (:class:`_SpikesWeightedOverTime`).
        """
        kernels = self._kernels(u_in)
        with torch.autocast(u_in.device.type, enabled=False):
            p = _SpikesWeightedOverTime.apply(u_in, kernels.membrane[-1], slope)
            return self._with_initial_state(p, state, kernels)

    def _with_initial_state(self, p: torch.Tensor, state: LIFState | None, kernels: TraceKernels) -> torch.Tensor:
        """``P[T-1]`` of the input alone ``p [B, ...]`` plus the decay of the initial ``state``."""
        if isinstance(self.base_layer, nn.Linear):
            p = p.flatten(1)
        if state is not None:
            p = p + kernels.membrane_from_q[-1] * state.q.detach().reshape(p.shape)
            if state.p is not None:
                p = p + kernels.membrane_from_p[-1] * state.p.detach().reshape(p.shape)
        return p

    def potentials(self, s_in: torch.Tensor, state: LIFState | None = None) -> tuple[torch.Tensor, LIFState]:
        """A whole sequence ``s_in [T, B, ...]`` -> ``(u [T, B, ...], final_state)``: the pooled
        membrane potentials, before the threshold."""
        if self._blocked_on_cpu(s_in):
            return self._blocked_potentials(s_in, state)
        p, final = self.traces(s_in, state)
        steps, batch = p.shape[:2]
        u = self._membrane(p.reshape(steps * batch, *p.shape[2:]))
        return u.reshape(steps, batch, *u.shape[1:]), final

    def _blocked_on_cpu(self, s_in: torch.Tensor) -> bool:
        """Whether :meth:`potentials` runs in blocks of steps (:class:`_BlockedConvPotentials`): a conv
        layer on a CPU, eager, without autocast, weights in the traces' dtype. Elsewhere (a GPU, a
        compiled graph, bf16) the whole sequence is one product and one conv."""
        conv = self.base_layer
        return (
            isinstance(conv, nn.Conv2d)
            and conv.padding_mode == "zeros"
            and s_in.device.type == "cpu"
            and s_in.dim() == 5
            and not torch.compiler.is_compiling()
            and not torch.is_autocast_enabled("cpu")
            and conv.weight.dtype == torch.promote_types(s_in.dtype, torch.float32)
        )

    def _blocked_potentials(self, s_in: torch.Tensor, state: LIFState | None) -> tuple[torch.Tensor, LIFState]:
        s_in = _at_least_float32(s_in)
        kernels = self._kernels(s_in)
        channels_last = _channels_last_steps(s_in)
        flat = _flatten_steps(s_in, channels_last)
        # the initial state as [N] vectors in the spikes' memory order (zeros for none: adding 0 is exact)
        q0 = p0 = flat.new_zeros(flat.shape[1])
        if state is not None:
            q0 = _flatten_steps(state.q.detach()[None], channels_last)[0]
            if state.p is not None:
                p0 = _flatten_steps(state.p.detach()[None], channels_last)[0]
        conv = self.base_layer
        layout = (s_in.shape[1:], channels_last)
        u = _BlockedConvPotentials.apply(
            flat, conv.weight, conv.bias, q0, p0, layout, conv, self.pool_size, self.alpha, self.beta
        )
        # the final state, as :meth:`traces` gives it (two rows of the whole-sequence kernels)
        q_last = torch.addmv(q0, flat.T, kernels.synaptic_last, beta=kernels.synaptic_last_from_q)
        p_last = flat.T @ kernels.membrane[-1] + kernels.membrane_from_q[-1] * q0 + kernels.membrane_from_p[-1] * p0
        final = LIFState(*(_unflatten_steps(x[None], s_in.shape[1:], channels_last)[0] for x in (q_last, p_last)))
        return u, final

    def forward(self, s_in: torch.Tensor, state: LIFState | None = None) -> tuple[torch.Tensor, torch.Tensor, LIFState]:
        """A whole sequence ``s_in [T, B, ...]`` -> ``(spikes [T, B, ...], u [T, B, ...], final_state)``."""
        u, final = self.potentials(s_in, state)
        return fast_sigmoid_spike(u, self.surrogate_slope), u, final


@dataclass(frozen=True)
class DecolleEncoderConfig:
    """Shape of a DECOLLE conv encoder: conv LIF layers then one dense LIF layer.

    Attributes:
        input_shape: ``(C, H, W)`` of one input frame.
        conv_channels: output channels of each conv LIF layer.
        pool_sizes: max-pool size after each conv layer (one entry per conv layer).
        kernel_size: conv kernel (stride 1, "same" padding ``kernel_size // 2``).
        out_features: width of the final dense LIF layer (the encoder output).
        alpha, beta: decays, one value for all layers or one per layer (conv layers then dense).
        surrogate_slope: fast-sigmoid slope.
        warmup_first_step: run step 0 once without gradient before the full pass, so frame 0 enters
            twice, as the reference does when it allocates its state.
    """

    input_shape: tuple[int, int, int] = (2, 32, 32)
    conv_channels: tuple[int, ...] = (32, 64, 128)
    pool_sizes: tuple[int, ...] = (2, 1, 2)
    kernel_size: int = 5
    out_features: int = 128
    alpha: float | tuple[float, ...] = 0.99
    beta: float | tuple[float, ...] = 0.97
    surrogate_slope: float = 10.0
    warmup_first_step: bool = True

    def __post_init__(self) -> None:
        if len(self.input_shape) != 3:
            raise ValueError(f"DecolleEncoderConfig.input_shape is (C, H, W); found {self.input_shape}")
        if len(self.pool_sizes) != len(self.conv_channels):
            raise ValueError(
                f"DecolleEncoderConfig: one pool size per conv layer; found {len(self.pool_sizes)} pool sizes "
                f"for {len(self.conv_channels)} conv layers"
            )
        if self.kernel_size % 2 != 1:
            raise ValueError(f"DecolleEncoderConfig.kernel_size must be odd, found {self.kernel_size}")
        for name in ("alpha", "beta"):
            value = getattr(self, name)
            if isinstance(value, Sequence) and len(value) != self.num_layers:
                raise ValueError(
                    f"DecolleEncoderConfig.{name}: give one value or {self.num_layers} (one per layer); "
                    f"found {len(value)}"
                )

    @property
    def num_layers(self) -> int:
        return len(self.conv_channels) + 1

    def decay(self, name: str, layer: int) -> float:
        value = getattr(self, name)
        return float(value[layer] if isinstance(value, Sequence) else value)

    @property
    def flat_features(self) -> int:
        """Input width of the dense layer: ``C_last * H' * W'`` after all pools."""
        _, height, width = self.input_shape
        for pool in self.pool_sizes:
            height, width = height // pool, width // pool
        return (self.conv_channels[-1] if self.conv_channels else self.input_shape[0]) * height * width


class DecolleEncoder(nn.Module):
    """Conv LIF layers -> flatten -> dense LIF layer; reads ``U`` of the dense layer at ``t = T - 1``.

    Biases start at zero and weights orthogonal (the state before LSUV initialisation).
    """

    def __init__(self, config: DecolleEncoderConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[DecolleLIFLayer] = []
        channels = config.input_shape[0]
        for i, (out_channels, pool) in enumerate(zip(config.conv_channels, config.pool_sizes, strict=True)):
            conv = nn.Conv2d(channels, out_channels, config.kernel_size, stride=1, padding=config.kernel_size // 2)
            layers.append(self._layer(conv, i, pool))
            channels = out_channels
        dense = nn.Linear(config.flat_features, config.out_features)
        layers.append(self._layer(dense, len(config.conv_channels), 1))
        self.layers = nn.ModuleList(layers)
        for layer in self.layers:
            nn.init.orthogonal_(layer.base_layer.weight)
            nn.init.zeros_(layer.base_layer.bias)

    def _layer(self, base: nn.Conv2d | nn.Linear, index: int, pool: int) -> DecolleLIFLayer:
        c = self.config
        return DecolleLIFLayer(base, c.decay("alpha", index), c.decay("beta", index), pool, c.surrogate_slope)

    @staticmethod
    def _prepare(layer: DecolleLIFLayer, spikes: torch.Tensor) -> torch.Tensor:
        # [T, B, C, H, W] spikes feed a Linear layer flattened per step.
        if isinstance(layer.base_layer, nn.Linear) and spikes.dim() > 3:
            return spikes.flatten(2)
        return spikes

    def _warmup_states(self, x0: torch.Tensor) -> list[LIFState | None]:
        """Each layer's state after the warm-up step on frame 0 ``x0 [B, C, H, W]`` (no gradient).

        The step starts from zero traces, so it leaves ``P = 0``: every layer's ``U`` is its bias
        and its output spikes ``H(maxpool(b)) = H(b)``, a constant per channel. Only the synaptic
        traces ``Q = (1 - beta) S_in`` are non-zero (``p = None``); no convolution is needed to know them.
        """
        if not self.config.warmup_first_step:
            return [None] * len(self.layers)
        states: list[LIFState | None] = []
        spikes = _at_least_float32(x0.detach())
        for layer in self.layers:
            spikes = self._prepare(layer, spikes[None])[0]
            states.append(LIFState((1.0 - layer.beta) * spikes, None))
            spikes = layer.resting_spikes(spikes)
        return states

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [T, B, C, H, W]`` (spike counts) -> ``U [B, out_features]`` of the dense layer at ``T - 1``."""
        return self.membrane_at_last_step(x, all_layers=False)[-1]

    def membrane_at_last_step(self, x: torch.Tensor, all_layers: bool = True) -> list[torch.Tensor]:
        """Pooled membrane potential of each layer at ``t = T - 1`` (only the last one if not ``all_layers``).

        Each entry is ``[B, C, H', W']`` for conv layers and ``[B, out_features]`` for the dense layer.
        """
        if x.dim() != 5 or tuple(x.shape[2:]) != tuple(self.config.input_shape):
            raise ValueError(
                f"DecolleEncoder expects [T, B, {', '.join(map(str, self.config.input_shape))}] input; "
                f"found {tuple(x.shape)}"
            )
        states = self._warmup_states(x[0])
        readouts: list[torch.Tensor] = []
        *conv_layers, dense = self.layers
        spikes = x
        fused_u = None  # the last conv layer's potentials, when its spikes go straight into the dense trace
        for i, (layer, state) in enumerate(zip(conv_layers, states[:-1], strict=True)):
            if i == len(conv_layers) - 1 and not _has_forward_hooks(layer):
                u, _ = layer.potentials(spikes, state)
                fused_u = u
            else:
                # through __call__, so forward hooks (the spike-raster figures) see the layer's spikes
                spikes, u, _ = layer(spikes, state)
            if all_layers:
                readouts.append(u[-1])
        # Only U[T-1] of the dense layer is read: one row of the trace kernel, one product, on the
        # last conv layer's spikes as they lie in memory (flattening [B, C, H, W] after the sum over
        # time copies T times less); those spikes feed nothing else, so unless a hook wants them they
        # are summed straight from that layer's potentials and never stored.
        if fused_u is not None:
            p = dense.last_trace_of_spikes(fused_u, conv_layers[-1].surrogate_slope, states[-1])
        else:
            p = dense.last_trace(spikes, states[-1])
        readouts.append(dense._membrane(p))
        return readouts
