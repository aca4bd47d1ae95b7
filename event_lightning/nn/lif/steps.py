"""LIF and leaky-integrator constants and their single time steps (norse's update equations).

The equations are in :mod:`event_lightning.nn.lif`; time constants are inverse seconds and ``dt``
is in seconds, as in norse.

:func:`lif_recurrent_step` is the step with autograd (SuperSpike surrogate, detached reset): the
reference that the fused scan of :mod:`event_lightning.nn.lif.recurrent_scan` is tested against.
The scan runs the two cells below instead, without building a graph: :class:`LIFRecurrentStep`
(one forward step) and :class:`LIFRecurrentGradStep` (one step of the hand-written backward pass).
Both see only ``[B, N]`` tensors, so ``compile`` compiles each once whatever the sequence length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from event_lightning.nn.surrogate import superspike


@dataclass(frozen=True)
class LIFParameters:
    """LIF constants: inverse time constants in 1/s, voltages in arbitrary units."""

    tau_syn_inv: float = 200.0
    tau_mem_inv: float = 100.0
    v_leak: float = 0.0
    v_th: float = 1.0
    v_reset: float = 0.0
    alpha: float = 100.0


@dataclass(frozen=True)
class LIParameters:
    """Leaky-integrator constants (norse's LIParameters defaults)."""

    tau_syn_inv: float = 200.0
    tau_mem_inv: float = 100.0
    v_leak: float = 0.0


def lif_recurrent_step(
    current: torch.Tensor,
    z: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    recurrent_weights: torch.Tensor,
    p: LIFParameters,
    dt: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step: projected input ``current [B, N]`` and state ``(z, v, i)`` -> new ``(z, v, i)``."""
    j = i + current + F.linear(z, recurrent_weights)
    v_decayed = v + dt * p.tau_mem_inv * ((p.v_leak - v) + j)
    i_new = j - dt * p.tau_syn_inv * j
    z_new = superspike(v_decayed - p.v_th, p.alpha)
    z_detached = z_new.detach()
    v_new = (1.0 - z_detached) * v_decayed + z_detached * p.v_reset
    return z_new, v_new, i_new


class LIFRecurrentStep(nn.Module):
    """One forward step of the fused scan, without autograd: ``(current, z, v, i, W)`` each
    ``[B, N]`` (``W [N, N]``) -> ``(z, v, i, v_decayed)``, ``v_decayed`` being the pre-reset voltage
    that the backward pass needs. Same operations as :func:`lif_recurrent_step`, so the same values."""

    def __init__(self, p: LIFParameters, dt: float) -> None:
        super().__init__()
        self.p, self.dt = p, dt

    def forward(
        self, current: torch.Tensor, z: torch.Tensor, v: torch.Tensor, i: torch.Tensor, recurrent_weights: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        p = self.p
        a_mem, a_syn = self.dt * p.tau_mem_inv, self.dt * p.tau_syn_inv
        j = i + current + F.linear(z, recurrent_weights)
        if p.v_leak == 0 and p.v_reset == 0:
            # Three terms vanish exactly: (0 - v) + j == j - v, a - b > 0 <=> a > b for IEEE floats,
            # and adding z * 0 changes nothing; fewer ops per step, the values of lif_recurrent_step.
            v_decayed = v + a_mem * (j - v)
            z = (v_decayed > p.v_th).to(v_decayed.dtype)
            v = (1.0 - z) * v_decayed
        else:
            v_decayed = v + a_mem * ((p.v_leak - v) + j)
            z = (v_decayed - p.v_th > 0).to(v_decayed.dtype)
            v = (1.0 - z) * v_decayed + z * p.v_reset
        return z, v, j - a_syn * j, v_decayed


class LIFRecurrentGradStep(nn.Module):
    """One step, backwards in time, of the fused scan's gradient: gradients with respect to the
    step's ``j`` and to the state it received, from the step's output gradients.

    ``forward(grad_spikes, keep, surrogate, grad_z, grad_v, grad_i, W)`` -> ``(grad_j, grad_z,
    grad_v)``, all ``[B, N]`` (``W [N, N]``); ``keep = 1 - z`` (no gradient through the reset),
    ``surrogate = 1 / (alpha |v' - v_th| + 1)^2``. The gradient for the previous ``i`` is ``grad_j``.
    """

    def __init__(self, p: LIFParameters, dt: float) -> None:
        super().__init__()
        self.a_mem, self.a_syn = dt * p.tau_mem_inv, dt * p.tau_syn_inv

    def forward(
        self,
        grad_spikes: torch.Tensor,
        keep: torch.Tensor,
        surrogate: torch.Tensor,
        grad_z: torch.Tensor,
        grad_v: torch.Tensor,
        grad_i: torch.Tensor,
        recurrent_weights: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        grad_decayed = grad_v * keep + (grad_spikes + grad_z) * surrogate
        grad_j = self.a_mem * grad_decayed + (1.0 - self.a_syn) * grad_i
        # j depends on the previous spikes through W z
        return grad_j, grad_j @ recurrent_weights, (1.0 - self.a_mem) * grad_decayed


def leaky_integrator_step(
    current: torch.Tensor, v: torch.Tensor, i: torch.Tensor, p: LIParameters, dt: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One leaky-integrator step: ``current [B, N]`` and state ``(v, i)`` -> new ``(v, i)``."""
    j = i + current
    v_new = v + dt * p.tau_mem_inv * ((p.v_leak - v) + j)
    return v_new, j - dt * p.tau_syn_inv * j
