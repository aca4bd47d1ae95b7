"""DECOLLE conv layers run over blocks of time steps on a CPU (eager), and the spikes weighted over time.

A conv LIF layer's traces, conv and max-pool are computed one block of steps at a time, the
traces' state carried from block to block (:func:`blocked_conv_potentials`); the last conv layer
of an encoder can also hand on only the weighted sum over time of its spikes, which is all the
dense readout reads (:func:`blocked_conv_weighted_spikes`). Either gives the same values and
gradients as the whole-sequence product, conv and max-pool under autograd (to float rounding),
with less trace arithmetic and no ``[T * B, ...]`` temporaries: glibc maps anything above its
mmap threshold (32 MiB at most) afresh at every call, and every 4 KiB page of it faults in at
first touch.

Shapes: ``flat [T, N]`` are a layer's input spikes in memory order
(:func:`~event_lightning.nn.decolle.traces.flatten_steps`), ``N = B * C * H * W``; potentials are
channels-last ``[T * B, C', H', W']`` images.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from event_lightning.nn.decolle.traces import (
    TraceKernels,
    channels_last_steps,
    flatten_steps,
    trace_kernels,
    unflatten_steps,
)

__all__ = ["BlockedConvLayer", "blocked_conv_potentials", "blocked_conv_weighted_spikes", "spikes_weighted_over_time"]

_CPU_BLOCK_BYTES = 16 << 20
"""Temporaries of at most this size come from the heap: glibc maps larger ones afresh (above its
mmap threshold, 32 MiB at most) and every 4 KiB page of them faults in at first touch."""

Layout = tuple[torch.Size, bool]
"""One step's input shape ``[B, C, H, W]`` and whether the spikes are channels-last in memory."""


@dataclass(frozen=True)
class BlockedConvLayer:
    """A conv LIF layer as the blocked path runs it: ``conv`` (its weight, bias and hyperparameters;
    "same" padding, stride 1 in the encoder), the ``layout`` of one input step, the max-pool size and
    the decays ``(alpha, beta)``."""

    conv: nn.Conv2d
    layout: Layout
    pool: int
    decays: tuple[float, float]


def _surrogate_gradient(u: torch.Tensor, grad: torch.Tensor, weights: torch.Tensor, slope: float) -> torch.Tensor:
    """``weights[t] * grad / (1 + slope |u[t]|)^2`` for ``u [n, N]``, ``grad [N]``, ``weights [n]``: the
    gradient of ``sum_t weights[t] H(u[t])`` under the fast-sigmoid surrogate, in one new buffer."""
    # in place on the denominator (not ``out=``, which TorchDynamo refuses on channels-last buffers)
    denominator = u.abs().mul_(slope).add_(1.0).square_()
    return denominator.reciprocal_().mul_(grad[None]).mul_(weights.view(-1, *[1] * (u.dim() - 1)))


class _SpikesWeightedOverTime(torch.autograd.Function):
    """``sum_t w[t] H(u[t])`` over the first dim of ``u [T, ...]``, fast-sigmoid surrogate for ``dH/du``.

    Equal to ``w @ fast_sigmoid_spike(u)`` with autograd (to float rounding), with fewer ``[T, ...]``
    buffers: the forward keeps no spikes, and the backward turns the denominator ``(1 + slope |u|)^2``
    into ``w[t] g / (1 + slope |u|)^2`` in its own buffer, where autograd fills three (the product
    ``w[t] g``, the denominator, the quotient).
    """

    @staticmethod
    def forward(ctx, u: torch.Tensor, weights: torch.Tensor, slope: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(u, weights)
        ctx.slope = slope
        channels_last = channels_last_steps(u)
        flat = flatten_steps(u, channels_last)
        steps, width = flat.shape
        # On a CPU, eager: the spikes in blocks of steps of at most _CPU_BLOCK_BYTES, which the heap
        # reuses. Elsewhere one product (a compiled graph does not grow with T).
        block = steps
        if u.device.type == "cpu" and not torch.compiler.is_compiling():
            block = _cpu_block_steps(width * u.element_size())
        summed = flat.new_zeros(1, width)
        for start in range(0, steps, block):
            summed.addmm_(weights[None, start : start + block], _spikes(flat[start : start + block]))
        return unflatten_steps(summed, u.shape[1:], channels_last)[0]

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        u, weights = ctx.saved_tensors
        return _surrogate_gradient(u, grad, weights, ctx.slope), None, None


def spikes_weighted_over_time(u: torch.Tensor, weights: torch.Tensor, slope: float) -> torch.Tensor:
    """``sum_t weights[t] H(u[t])`` for potentials ``u [T, ...]`` and ``weights [T]`` -> ``[...]``, with the
    fast-sigmoid surrogate (``slope``) as ``dH/du``; the spikes are never stored."""
    return _SpikesWeightedOverTime.apply(u, weights, slope)


def _spikes(u: torch.Tensor) -> torch.Tensor:
    # the comparison written straight into a float buffer: a third faster than bool then float
    return torch.gt(u, 0, out=torch.empty_like(u))


def _cpu_block_steps(step_bytes: int) -> int:
    """Steps per block so that a block's ``[steps, ...]`` temporary of ``step_bytes`` per step stays
    within :data:`_CPU_BLOCK_BYTES`."""
    return max(1, _CPU_BLOCK_BYTES // max(1, step_bytes))


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


def _conv_input(traces: torch.Tensor, layout: Layout) -> torch.Tensor:
    """Traces ``[n, N]`` (memory order) as channels-last conv input ``[n * B, C, H, W]``."""
    shape, channels_last = layout
    p = unflatten_steps(traces, shape, channels_last)
    return p.reshape(-1, *shape[1:]).contiguous(memory_format=torch.channels_last)


class _ConvBlocks:
    """One conv LIF layer over blocks of steps: a block's pooled potentials from its input spikes and
    the state the block before left, and, backwards, its gradients (see :class:`_BlockedConvPotentials`).

    Holds the weight and bias gradients summed over the blocks run backwards so far.
    """

    def __init__(
        self, like: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, layer: BlockedConvLayer
    ) -> None:
        self.weight, self.bias = weight, bias
        self.layout, self.conv, self.pool = layer.layout, layer.conv, layer.pool
        self.kernels = _BlockKernels(*layer.decays, like)
        shape = layer.layout[0]
        self.batch = shape[0]
        # sized for a conv output at the input's resolution (the encoder's "same" stride-1 convs; a
        # strided conv's blocks stay smaller than the bound)
        self.block = _cpu_block_steps(shape[0] * weight.shape[0] * shape[2] * shape[3] * like.element_size())
        self.grad_weight = torch.zeros_like(weight)
        self.grad_bias = None if bias is None else torch.zeros_like(bias)

    def ranges(self, steps: int) -> list[tuple[int, int]]:
        """``(first, last)`` steps of each block, in time order."""
        return [(first, min(first + self.block, steps)) for first in range(0, steps, self.block)]

    def potentials(
        self, spikes: torch.Tensor, q: torch.Tensor, p: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """A block's ``spikes [n, N]`` from the state ``(q, p)`` -> (pooled potentials ``[n * B, C', H', W']``,
        the max-pool's indices or None, the state ``(q', p')`` handed to the next block)."""
        conv = self.conv
        traces, q_next = self.kernels.advance(spikes, q, p)
        u = F.conv2d(
            _conv_input(traces, self.layout),
            self.weight,
            self.bias,
            conv.stride,
            conv.padding,
            conv.dilation,
            conv.groups,
        )
        indices = None
        if self.pool > 1:
            u, indices = F.max_pool2d(u, self.pool, return_indices=True)
        return u, indices, q_next, traces[-1].clone()

    def backward(
        self,
        spikes: torch.Tensor,
        start: tuple[torch.Tensor, torch.Tensor],
        indices: torch.Tensor | None,
        grad_u: torch.Tensor,
        grad_spikes: torch.Tensor | None,
        grad_state_next: tuple[torch.Tensor | None, torch.Tensor | None],
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """One block backwards from ``dL/dU [n * B, C', H', W']``: adds to the weight and bias gradients and,
        when ``grad_spikes [n, N]`` is given, writes ``dL/dS`` there; returns the adjoints of the block's
        starting state (``(None, None)`` without ``grad_spikes``). The traces are recomputed from the spikes
        and ``start``, the state the block began from."""
        conv = self.conv
        traces, _ = self.kernels.advance(spikes, *start)
        conv_input = _conv_input(traces, self.layout)
        if indices is not None:
            # max-pool's own backward (only the shape of its input is read): max_unpool2d gives the
            # same values but refuses to run under torch.use_deterministic_algorithms(True)
            unpooled = torch.empty(
                (*grad_u.shape[:2], *_conv_output_size(conv, conv_input.shape[2:])),
                dtype=grad_u.dtype,
                memory_format=torch.channels_last,
            )
            grad_u = torch.ops.aten.max_pool2d_with_indices_backward(
                grad_u, unpooled, [self.pool] * 2, [self.pool] * 2, [0, 0], [1, 1], False, indices
            )
        grad_traces, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_u.contiguous(memory_format=torch.channels_last),
            conv_input,
            self.weight,
            None if self.bias is None else [self.bias.shape[0]],
            conv.stride,
            conv.padding,
            conv.dilation,
            False,
            [0, 0],
            conv.groups,
            [grad_spikes is not None, True, self.bias is not None],
        )
        self.grad_weight += grad_w
        if self.grad_bias is not None:
            self.grad_bias += grad_b
        if grad_spikes is None:
            return None, None
        shape, channels_last = self.layout
        grad_traces = flatten_steps(grad_traces.view(spikes.shape[0], *shape), channels_last)
        return self.kernels.adjoint(grad_traces, *grad_state_next, grad_spikes)

    def run_forward(
        self, flat: torch.Tensor, initial: tuple[torch.Tensor, torch.Tensor]
    ) -> Iterator[tuple[int, int, torch.Tensor]]:
        """The blocks in time order from the initial state: ``(first, last, pooled potentials)`` of each.
        Afterwards :attr:`saved` holds what :meth:`run_backward` needs besides ``flat``."""
        state, self.saved = initial, []
        starts, indices = [], []
        for first, last in self.ranges(flat.shape[0]):
            starts += state
            u, where, *state = self.potentials(flat[first:last], *state)
            if where is not None:
                indices.append(where)
            yield first, last, u
        self.saved = starts + indices

    def run_backward(
        self,
        flat: torch.Tensor,
        saved: Sequence[torch.Tensor],
        grad_u_of: Callable[[int, int, int], torch.Tensor],
        needs_input_grad: bool,
    ) -> torch.Tensor | None:
        """The blocks in reverse, block ``k`` of steps ``[first, last)`` from ``grad_u_of(k, first, last)``
        (``dL/dU`` as :meth:`backward` takes it); ``saved`` is :attr:`saved` of the forward. Returns
        ``dL/dS [T, N]`` if ``needs_input_grad``; the weight and bias gradients are left on ``self``."""
        ranges = self.ranges(flat.shape[0])
        starts, indices = saved[: 2 * len(ranges)], saved[2 * len(ranges) :]
        grad_flat = torch.empty_like(flat) if needs_input_grad else None
        grad_state = (None, None)  # adjoints of the state handed to the next block
        for k, (first, last) in reversed(list(enumerate(ranges))):
            grad_state = self.backward(
                flat[first:last],
                (starts[2 * k], starts[2 * k + 1]),
                indices[k] if indices else None,
                grad_u_of(k, first, last),
                None if grad_flat is None else grad_flat[first:last],
                grad_state,
            )
        return grad_flat


def _conv_output_size(conv: nn.Conv2d, size: torch.Size) -> list[int]:
    """``[H', W']`` of ``conv``'s output for an input of ``size = [H, W]``."""
    return [
        (n + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1
        for n, pad, dilation, kernel, stride in zip(
            size, conv.padding, conv.dilation, conv.kernel_size, conv.stride, strict=True
        )
    ]


def _steps_of(u: torch.Tensor, steps: int) -> torch.Tensor:
    """Channels-last potentials ``[n * B, C', H', W']`` as ``[n, B * H' * W' * C']`` (memory order; a view)."""
    return u.permute(0, 2, 3, 1).reshape(steps, -1)


def _images_of(flat: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`_steps_of`: ``[n, B * H' * W' * C']`` -> channels-last images shaped like ``like``."""
    rows, channels, height, width = like.shape
    return flat.view(rows, height, width, channels).permute(0, 3, 1, 2)


class _BlockedConvPotentials(torch.autograd.Function):
    """The pooled membrane potentials ``maxpool(conv(P) + b)`` of a conv LIF layer, computed in
    blocks of time steps (CPU, eager), the traces ``P`` carried from block to block by the
    recursion's state.

    A block of ``n`` steps starting from the state ``(q, p)`` left by the block before has
    ``P_blk = K_n S_blk + m_q q + m_p p`` and hands on ``q' = s_n . S_blk + beta^n q``,
    ``p' = P_blk[-1]`` (:func:`trace_kernels` of ``n`` steps). The backward runs the blocks in
    reverse with the adjoint of that state: ``dS_blk = K_n^T dP_blk + s_n dq'``,
    ``dq = m_q . dP_blk + beta^n dq'``, ``dp = m_p . dP_blk`` (``dp'`` joins ``dP_blk[-1]``).

    Each block's trace product reads only its own steps (``T n N`` multiply-adds instead of
    ``T^2 N``), and no ``[T, ...]`` tensor other than the input spikes, the pooled output and the
    input's gradient is ever made. The traces, the unpooled conv output and its gradient exist one
    block at a time (within ``_CPU_BLOCK_BYTES``, so the heap recycles them); the backward
    recomputes a block's traces from its spikes and the state saved at its start.
    """

    @staticmethod
    def forward(ctx, flat, weight, bias, q0, p0, layer):  # type: ignore[override]
        blocks = _ConvBlocks(flat, weight, bias, layer)
        batch = blocks.batch
        out = None
        for first, last, u in blocks.run_forward(flat, (q0, p0)):
            if out is None:
                out = torch.empty(
                    (flat.shape[0] * batch, *u.shape[1:]),
                    dtype=u.dtype,
                    device=u.device,
                    memory_format=torch.channels_last,
                )
            out[first * batch : last * batch] = u
        ctx.save_for_backward(flat, weight, bias, *blocks.saved)
        ctx.layer = layer
        return out.view(flat.shape[0], batch, *out.shape[1:])

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        flat, weight, bias, *saved = ctx.saved_tensors
        blocks = _ConvBlocks(flat, weight, bias, ctx.layer)
        batch = blocks.batch
        grad = grad.reshape(flat.shape[0] * batch, *grad.shape[2:])
        grad_flat = blocks.run_backward(
            flat, saved, lambda k, first, last: grad[first * batch : last * batch], ctx.needs_input_grad[0]
        )
        return grad_flat, blocks.grad_weight, blocks.grad_bias, None, None, None


class _BlockedConvWeightedSpikes(torch.autograd.Function):
    """``sum_t w[t] H(U[t])`` and ``U[T-1]`` of a conv LIF layer's pooled potentials ``U``, in blocks of
    steps (CPU, eager): :class:`_BlockedConvPotentials` then :class:`_SpikesWeightedOverTime` without
    their ``[T, ...]`` potentials and potentials' gradient.

    Each block's potentials are kept for the surrogate's backward as a tensor of their own (within
    ``_CPU_BLOCK_BYTES``, from the heap); the backward turns a block's potentials into its gradient
    ``w[t] g / (1 + slope |U[t]|)^2`` and runs the block backwards as :class:`_BlockedConvPotentials`
    does. Outputs are channels-last ``[B, C', H', W']``.
    """

    @staticmethod
    def forward(ctx, flat, weight, bias, q0, p0, layer, weights, slope):  # type: ignore[override]
        blocks = _ConvBlocks(flat, weight, bias, layer)
        summed, potentials = None, []
        for first, last, u in blocks.run_forward(flat, (q0, p0)):
            potentials.append(u)
            u_steps = _steps_of(u, last - first)
            if summed is None:
                summed = u_steps.new_zeros(1, u_steps.shape[1])
            summed.addmm_(weights[None, first:last], _spikes(u_steps))
        ctx.save_for_backward(flat, weight, bias, weights, *potentials, *blocks.saved)
        ctx.layer, ctx.slope = layer, slope
        # U[T-1] as a tensor of its own: a view would let an in-place change reach the saved block
        return _images_of(summed, u[-blocks.batch :]), u[-blocks.batch :].clone()

    @staticmethod
    def backward(ctx, grad_summed, grad_u_last):  # type: ignore[override]
        flat, weight, bias, weights, *saved = ctx.saved_tensors
        blocks = _ConvBlocks(flat, weight, bias, ctx.layer)
        n_blocks = len(blocks.ranges(flat.shape[0]))
        potentials = saved[:n_blocks]
        grad_summed = grad_summed.permute(0, 2, 3, 1).reshape(-1)  # memory order of _steps_of

        def grad_u_of(k: int, first: int, last: int) -> torch.Tensor:
            u = potentials[k]
            grad_u = _images_of(
                _surrogate_gradient(_steps_of(u, last - first), grad_summed, weights[first:last], ctx.slope), u
            )
            if last == flat.shape[0]:
                grad_u[-blocks.batch :] += grad_u_last
            return grad_u

        grad_flat = blocks.run_backward(flat, saved[n_blocks:], grad_u_of, ctx.needs_input_grad[0])
        return grad_flat, blocks.grad_weight, blocks.grad_bias, None, None, None, None, None


def blocked_conv_potentials(
    flat: torch.Tensor, layer: BlockedConvLayer, initial: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """The pooled potentials ``[T, B, C', H', W']`` (channels-last images) of the conv LIF ``layer`` for its
    input spikes ``flat [T, N]`` (memory order), from the initial traces ``initial = (q0, p0)`` (``[N]``
    each, no gradient). Gradients reach ``flat`` and the conv's weight and bias."""
    return _BlockedConvPotentials.apply(flat, layer.conv.weight, layer.conv.bias, *initial, layer)


def blocked_conv_weighted_spikes(
    flat: torch.Tensor,
    layer: BlockedConvLayer,
    initial: tuple[torch.Tensor, torch.Tensor],
    weights: torch.Tensor,
    slope: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """For the same layer and input as :func:`blocked_conv_potentials`: ``sum_t weights[t] H(U[t])`` and
    ``U[T-1]``, both ``[B, C', H', W']`` (channels-last), with the fast-sigmoid surrogate (``slope``) as
    ``dH/dU``; ``weights [T]``. Neither the spikes nor the ``[T, ...]`` potentials are ever stored whole."""
    conv = layer.conv
    return _BlockedConvWeightedSpikes.apply(flat, conv.weight, conv.bias, *initial, layer, weights, slope)
