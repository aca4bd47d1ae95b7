"""Recurrent LIF neurons over time: a loop of :class:`LIFRecurrentStep`, or one fused autograd node."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from event_lightning.nn.lif.steps import LIFParameters, LIFRecurrentStep


class _FusedLIFRecurrentScan(torch.autograd.Function):
    """The whole :func:`lif_recurrent_scan` as one autograd node (same forward ops, same values).

    Forward runs the step loop without building a graph and keeps only the pre-reset voltages
    and the spikes; backward walks time in reverse by hand, with the recurrent weight gradient as
    one matmul over all steps. This removes per-step autograd bookkeeping, which dominates the
    training step of small recurrent layers on CPU. Gradients follow the module's equations: no
    gradient through the reset, SuperSpike surrogate ``1 / (alpha |v' - v_th| + 1)^2``.
    """

    @staticmethod
    def forward(ctx, input_current, recurrent_weights, z0, v0, i0, p: LIFParameters, dt: float):  # type: ignore[override]
        a_mem, a_syn = dt * p.tau_mem_inv, dt * p.tau_syn_inv
        spikes = torch.empty_like(input_current)
        v_decayed_all = torch.empty_like(input_current)
        z, v, i = z0, v0, i0
        # With v_leak = v_reset = 0 (the defaults) three terms vanish exactly: (0 - v) + j == j - v,
        # a - b > 0 <=> a > b for IEEE floats, and adding z * 0 changes nothing; fewer ops per
        # step, same values as lif_recurrent_step.
        zero_leak_and_reset = p.v_leak == 0 and p.v_reset == 0
        for t in range(input_current.shape[0]):
            j = i + input_current[t] + F.linear(z, recurrent_weights)
            if zero_leak_and_reset:
                v_decayed = v + a_mem * (j - v)
                i = j - a_syn * j
                z = (v_decayed > p.v_th).to(v_decayed.dtype)
                v = (1.0 - z) * v_decayed
            else:  # the op sequence of lif_recurrent_step
                v_decayed = v + a_mem * ((p.v_leak - v) + j)
                i = j - a_syn * j
                z = (v_decayed - p.v_th > 0).to(v_decayed.dtype)
                v = (1.0 - z) * v_decayed + z * p.v_reset
            spikes[t] = z
            v_decayed_all[t] = v_decayed
        ctx.save_for_backward(recurrent_weights, z0, spikes, v_decayed_all)
        ctx.p, ctx.dt = p, dt
        return spikes, z.clone(), v, i

    @staticmethod
    def backward(ctx, grad_spikes, grad_z, grad_v, grad_i):  # type: ignore[override]
        recurrent_weights, z0, spikes, v_decayed_all = ctx.saved_tensors
        p, dt = ctx.p, ctx.dt
        a_mem, a_syn = dt * p.tau_mem_inv, dt * p.tau_syn_inv
        steps = spikes.shape[0]
        zeros = torch.zeros_like(z0)
        grad_z = zeros if grad_z is None else grad_z
        grad_v = zeros if grad_v is None else grad_v
        grad_i = zeros if grad_i is None else grad_i
        grad_spikes = torch.zeros_like(spikes) if grad_spikes is None else grad_spikes
        # surrogate derivative and reset factor of every step at once (vectorised over time)
        surrogate = ((v_decayed_all - p.v_th).abs() * p.alpha + 1.0).square().reciprocal_()
        keep = 1.0 - spikes
        grad_j_all = torch.empty_like(spikes)
        for t in range(steps - 1, -1, -1):
            grad_vd = grad_v * keep[t] + (grad_spikes[t] + grad_z) * surrogate[t]
            grad_j = a_mem * grad_vd + (1.0 - a_syn) * grad_i
            grad_j_all[t] = grad_j
            grad_v = (1.0 - a_mem) * grad_vd
            grad_i = grad_j
            grad_z = grad_j @ recurrent_weights  # j depends on z_{t-1} through W z
        z_previous = torch.cat((z0.unsqueeze(0), spikes[:-1]))
        n = spikes.shape[-1]
        grad_w = grad_j_all.reshape(-1, n).t() @ z_previous.reshape(-1, n)
        return grad_j_all, grad_w, grad_z, grad_v, grad_i, None, None


def _use_fused_scan(step: LIFRecurrentStep, tensors: tuple[torch.Tensor, ...]) -> bool:
    """The fused scan replaces calls of ``step``; keep the step loop where that would change what
    runs: a compiled step (``compile: true``), tracing by the compiler, autocast (mixed precision),
    or a subclassed step."""
    return (
        type(step) is LIFRecurrentStep
        and getattr(step, "_compiled_call_impl", None) is None
        and not torch.compiler.is_compiling()
        and not torch.is_autocast_enabled(tensors[0].device.type)  # mixed precision: the step loop
        and torch.is_grad_enabled()
        and any(t.requires_grad for t in tensors)
    )


def lif_recurrent_scan(
    input_current: torch.Tensor,
    recurrent_weights: torch.Tensor,
    step: LIFRecurrentStep,
    state: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Run recurrent LIF neurons over time.

    Args:
        input_current: ``[T, B, N]`` the already projected input ``W_in x_t`` of every step.
        recurrent_weights: ``[N, N]`` (row = postsynaptic neuron).
        step: the single-step update (its parameters and ``dt``).
        state: ``(z, v, i)`` each ``[B, N]``; ``None`` starts from ``z = 0, v = v_leak, i = 0``.

    Returns:
        spikes ``[T, B, N]`` and the final state ``(z, v, i)``.
    """
    if state is None:
        zeros = input_current.new_zeros(input_current.shape[1:])
        state = (zeros, zeros + step.p.v_leak, zeros)
    z, v, i = state
    if _use_fused_scan(step, (input_current, recurrent_weights, z, v, i)):
        spikes, z, v, i = _FusedLIFRecurrentScan.apply(input_current, recurrent_weights, z, v, i, step.p, step.dt)
        return spikes, (z, v, i)
    spikes = []
    for current in input_current.unbind(0):  # the recurrence needs z of the previous step
        z, v, i = step(current, z, v, i, recurrent_weights)
        spikes.append(z)
    return torch.stack(spikes), (z, v, i)
