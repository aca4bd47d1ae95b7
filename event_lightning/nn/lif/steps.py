"""LIF and leaky-integrator constants and their single time steps (norse's update equations).

The equations are in :mod:`event_lightning.nn.lif`; time constants are inverse seconds and ``dt``
is in seconds, as in norse.
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
    """:func:`lif_recurrent_step` as a module: the unit that ``compile`` compiles (shapes stay fixed
    while the sequence length varies, so it compiles once)."""

    def __init__(self, p: LIFParameters, dt: float) -> None:
        super().__init__()
        self.p, self.dt = p, dt

    def forward(self, current, z, v, i, recurrent_weights):
        return lif_recurrent_step(current, z, v, i, recurrent_weights, self.p, self.dt)


def leaky_integrator_step(
    current: torch.Tensor, v: torch.Tensor, i: torch.Tensor, p: LIParameters, dt: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One leaky-integrator step: ``current [B, N]`` and state ``(v, i)`` -> new ``(v, i)``."""
    j = i + current
    v_new = v + dt * p.tau_mem_inv * ((p.v_leak - v) + j)
    return v_new, j - dt * p.tau_syn_inv * j
