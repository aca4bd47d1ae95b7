"""Current-based leaky integrate-and-fire neurons with norse's (>= 1.0) update equations.

Dynamics are pure functions of (input, state) -> (output, state); the modules only hold weights.
Per time step ``t`` with ``a_mem = dt * tau_mem_inv`` and ``a_syn = dt * tau_syn_inv``:

    j      = i + W_in x_t + W_rec z            (current jump first; W_in x_t for all t in one matmul)
    v'     = v + a_mem (v_leak - v + j)
    i_new  = (1 - a_syn) j
    z_new  = H(v' - v_th)                      (SuperSpike surrogate)
    v_new  = (1 - sg(z_new)) v' + sg(z_new) v_reset     (sg = stop-gradient: no gradient via reset)

The leaky integrator (readout) is the same without threshold and reset. Time constants are
inverse seconds and ``dt`` is in seconds, as in norse.
"""

from __future__ import annotations

import math
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
    spikes = []
    for current in input_current.unbind(0):  # the recurrence needs z of the previous step
        z, v, i = step(current, z, v, i, recurrent_weights)
        spikes.append(z)
    return torch.stack(spikes), (z, v, i)


def leaky_integrator_step(
    current: torch.Tensor, v: torch.Tensor, i: torch.Tensor, p: LIParameters, dt: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One leaky-integrator step: ``current [B, N]`` and state ``(v, i)`` -> new ``(v, i)``."""
    j = i + current
    v_new = v + dt * p.tau_mem_inv * ((p.v_leak - v) + j)
    return v_new, j - dt * p.tau_syn_inv * j


def leaky_integrator_scan(
    input_current: torch.Tensor,
    p: LIParameters,
    dt: float,
    state: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Leaky integrator over time: ``input_current [T, B, N]`` -> voltages ``[T, B, N]``, final ``(v, i)``."""
    if state is None:
        zeros = input_current.new_zeros(input_current.shape[1:])
        state = (zeros + p.v_leak, zeros)
    v, i = state
    voltages = []
    for current in input_current.unbind(0):
        v, i = leaky_integrator_step(current, v, i, p, dt)
        voltages.append(v)
    return torch.stack(voltages), (v, i)


class LIFRecurrent(nn.Module):
    """A layer of recurrently connected current-based LIF neurons, time-first.

    Parameter names and initialisation follow norse's ``LIFRecurrentCell``: ``input_weights``
    ``[hidden, input]`` and ``recurrent_weights`` ``[hidden, hidden]``, both ``N(0, 1) * sqrt(2 /
    hidden)``; without autapses the recurrent diagonal is zero and stays zero (it is masked in the
    forward pass, so its gradient is zero too). The input projection of all T steps is one matmul;
    only the recurrence loops over time.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        p: LIFParameters = LIFParameters(),
        dt: float = 1e-3,
        autapses: bool = False,
    ) -> None:
        super().__init__()
        self.step = LIFRecurrentStep(p, dt)
        scale = math.sqrt(2.0 / hidden_size)
        self.input_weights = nn.Parameter(torch.randn(hidden_size, input_size) * scale)
        self.recurrent_weights = nn.Parameter(torch.randn(hidden_size, hidden_size) * scale)
        mask = torch.ones(hidden_size, hidden_size)
        if not autapses:
            mask.fill_diagonal_(0.0)
            with torch.no_grad():
                self.recurrent_weights.mul_(mask)
        self.register_buffer("recurrent_mask", mask, persistent=False)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``x [T, B, input]`` -> spikes ``[T, B, hidden]`` and the final state ``(z, v, i)``."""
        current = F.linear(x, self.input_weights)
        return lif_recurrent_scan(current, self.recurrent_weights * self.recurrent_mask, self.step, state)


class LeakyIntegrator(nn.Module):
    """Stateless leaky-integrator cell over time: ``[T, B, N]`` currents -> ``[T, B, N]`` voltages."""

    def __init__(self, p: LIParameters = LIParameters(), dt: float = 1e-3) -> None:
        super().__init__()
        self.p, self.dt = p, dt

    def forward(
        self, current: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        return leaky_integrator_scan(current, self.p, self.dt, state)


class LIFClassifierNet(nn.Module):
    """norse's POKER-DVS tutorial network: flatten -> recurrent LIF -> Linear (no bias) -> LI.

    Input frames ``[T, B, P, H, W]`` (any trailing shape; flattened in (P, H, W) order); output
    the readout voltages ``[T, B, num_classes]``.
    """

    def __init__(
        self,
        input_features: int,
        hidden_features: int,
        num_classes: int,
        lif: LIFParameters,
        readout: LIParameters,
        dt: float,
    ) -> None:
        super().__init__()
        self.lif = LIFRecurrent(input_features, hidden_features, lif, dt)
        self.fc_out = nn.Linear(hidden_features, num_classes, bias=False)
        self.readout = LeakyIntegrator(readout, dt)

    def compile_targets(self) -> list[nn.Module]:
        """What ``compile: true`` compiles: the recurrent step (the readout is a few cheap ops)."""
        return [self.lif.step]

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        spikes, _ = self.lif(frames.flatten(2))
        voltages, _ = self.readout(self.fc_out(spikes))
        return voltages
