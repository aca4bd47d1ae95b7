"""Recurrent LIF neurons over time as one autograd node: a forward step loop and a hand-written
backward loop, each calling one cell per time step.

The forward pass runs :class:`~event_lightning.nn.lif.steps.LIFRecurrentStep` without building a
graph and keeps only the spikes and the pre-reset voltages; the backward pass walks time in reverse
with :class:`~event_lightning.nn.lif.steps.LIFRecurrentGradStep` and takes the recurrent weight
gradient as one matmul over all steps. This removes per-step autograd bookkeeping, which dominates
small recurrent layers, and gives ``compile`` two fixed-shape cells to compile once each (the
sequence length never enters a compiled graph). Gradients follow the module's equations: no
gradient through the reset, SuperSpike surrogate ``1 / (alpha |v' - v_th| + 1)^2``; the values are
those of a loop of :func:`~event_lightning.nn.lif.steps.lif_recurrent_step` (tested bit for bit).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from event_lightning.nn.lif.steps import LIFRecurrentGradStep, LIFRecurrentStep


class LIFScanCells(NamedTuple):
    """The per-step cells a scan calls (compiled or not)."""

    step: LIFRecurrentStep
    grad_step: LIFRecurrentGradStep


class _LIFRecurrentScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input_current, recurrent_weights, z0, v0, i0, cells: LIFScanCells):  # type: ignore[override]
        spikes = torch.empty_like(input_current)
        v_decayed_all = torch.empty_like(input_current)
        # detached: a compiled cell then sees the same requires_grad in training and evaluation
        current, weights = input_current.detach(), recurrent_weights.detach()
        z, v, i = z0.detach(), v0.detach(), i0.detach()
        for t in range(current.shape[0]):
            z, v, i, v_decayed = cells.step(current[t], z, v, i, weights)
            spikes[t] = z
            v_decayed_all[t] = v_decayed
        ctx.save_for_backward(recurrent_weights, z0, spikes, v_decayed_all)
        ctx.cells = cells
        return spikes, z.clone(), v, i

    @staticmethod
    def backward(ctx, grad_spikes, grad_z, grad_v, grad_i):  # type: ignore[override]
        recurrent_weights, z0, spikes, v_decayed_all = ctx.saved_tensors
        p = ctx.cells.step.p
        zeros = torch.zeros_like(z0)
        # an output without a gradient gets zeros (separate tensors: a compiled cell guards on aliasing)
        grad_z = zeros if grad_z is None else grad_z
        grad_v = zeros.clone() if grad_v is None else grad_v
        grad_i = zeros.clone() if grad_i is None else grad_i
        grad_spikes = torch.zeros_like(spikes) if grad_spikes is None else grad_spikes
        # Time runs backwards, so the per-step tensors are stored time-reversed: the loop then walks
        # memory forwards and the cell first gets a slice at storage offset 0 (a compiled cell first
        # called at a later offset guards on offset >= 2, and the last step would recompile it).
        # Surrogate derivative and reset factor of every step at once (vectorised over time).
        surrogate = ((v_decayed_all.flip(0) - p.v_th).abs() * p.alpha + 1.0).square().reciprocal_()
        keep = 1.0 - spikes.flip(0)
        grad_spikes = grad_spikes.flip(0)
        grad_j_reversed = torch.empty_like(spikes)
        for k in range(spikes.shape[0]):
            grad_j, grad_z, grad_v = ctx.cells.grad_step(
                grad_spikes[k], keep[k], surrogate[k], grad_z, grad_v, grad_i, recurrent_weights
            )
            grad_j_reversed[k] = grad_j
            grad_i = grad_j
        grad_j_all = grad_j_reversed.flip(0)
        z_previous = torch.cat((z0.unsqueeze(0), spikes[:-1]))
        n = spikes.shape[-1]
        grad_w = grad_j_all.reshape(-1, n).t() @ z_previous.reshape(-1, n)
        return grad_j_all, grad_w, grad_z, grad_v, grad_i, None


def initial_state(input_current: torch.Tensor, v_leak: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``z = 0, v = v_leak, i = 0``, each ``[B, N]`` like one step of ``input_current [T, B, N]``;
    three separate tensors, so that a compiled cell never sees two state inputs alias."""
    shape = input_current.shape[1:]
    return input_current.new_zeros(shape), input_current.new_full(shape, v_leak), input_current.new_zeros(shape)


def lif_recurrent_scan(
    input_current: torch.Tensor,
    recurrent_weights: torch.Tensor,
    cells: LIFScanCells,
    state: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Run recurrent LIF neurons over time.

    Args:
        input_current: ``[T, B, N]`` the already projected input ``W_in x_t`` of every step.
        recurrent_weights: ``[N, N]`` (row = postsynaptic neuron).
        cells: the forward and backward step cells (their parameters and ``dt``).
        state: ``(z, v, i)`` each ``[B, N]``; ``None`` starts from ``z = 0, v = v_leak, i = 0``.

    Returns:
        spikes ``[T, B, N]`` and the final state ``(z, v, i)``.
    """
    if state is None:
        state = initial_state(input_current, cells.step.p.v_leak)
    spikes, z, v, i = _LIFRecurrentScan.apply(input_current, recurrent_weights, *state, cells)
    return spikes, (z, v, i)
