"""The LIF layers as modules: recurrent LIF neurons and the leaky-integrator readout, time-first."""

from __future__ import annotations

import math

import torch
from torch import nn

from event_lightning.nn.lif.integrator import leaky_integrator_scan
from event_lightning.nn.lif.recurrent_scan import lif_recurrent_scan
from event_lightning.nn.lif.sparse_input import input_projection
from event_lightning.nn.lif.steps import LIFParameters, LIFRecurrentStep, LIParameters


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
        p: LIFParameters = LIFParameters(),  # noqa: B008 - frozen dataclass, safe to share
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
        current = input_projection(x, self.input_weights)
        return lif_recurrent_scan(current, self.recurrent_weights * self.recurrent_mask, self.step, state)


class LeakyIntegrator(nn.Module):
    """Stateless leaky-integrator cell over time: ``[T, B, N]`` currents -> ``[T, B, N]`` voltages."""

    def __init__(self, p: LIParameters = LIParameters(), dt: float = 1e-3) -> None:  # noqa: B008 - frozen
        super().__init__()
        self.p, self.dt = p, dt

    def forward(
        self, current: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        return leaky_integrator_scan(current, self.p, self.dt, state)
