"""The LIF layers as modules: recurrent LIF neurons and the leaky-integrator readout, time-first.

Both run in float32 (or the dtype of their weights) whatever autocast says: their state,
thresholds and traces are what mixed precision must not round (see :func:`full_precision`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn

from event_lightning.nn.lif.integrator import leaky_integrator_scan
from event_lightning.nn.lif.recurrent_scan import LIFScanCells, lif_recurrent_scan
from event_lightning.nn.lif.sparse_input import input_projection
from event_lightning.nn.lif.steps import LIFParameters, LIFRecurrentGradStep, LIFRecurrentStep, LIParameters

# torch.compile modes that capture CUDA graphs: a cell called once per time step would record one
# graph per step, and a graph's outputs are overwritten by its next replay.
CUDAGRAPH_MODES = ("reduce-overhead", "max-autotune")


@contextlib.contextmanager
def full_precision(device: torch.device) -> Iterator[None]:
    """Autocast off on ``device`` for the block.

    Measured on the POKER-DVS network (T=500, B=32, 2450 -> 100 recurrent LIF, random sparse input,
    bf16 autocast on the CPU): bf16 input weights alone flip 2.9 % of the spikes even with float32
    state and float32 accumulation, float32 throughout flips none. The whole network is 255k
    weights, so bf16 would save nothing worth that.
    """
    with torch.autocast(device_type=device.type, enabled=False):
        yield


class LIFRecurrent(nn.Module):
    """A layer of recurrently connected current-based LIF neurons, time-first.

    Parameter names and initialisation follow norse's ``LIFRecurrentCell``: ``input_weights``
    ``[hidden, input]`` and ``recurrent_weights`` ``[hidden, hidden]``, both ``N(0, 1) * sqrt(2 /
    hidden)``; without autapses the recurrent diagonal is zero and stays zero (it is masked in the
    forward pass, so its gradient is zero too). The input projection of all T steps is one matmul;
    only the recurrence loops over time (:func:`lif_recurrent_scan`), through the step cells
    ``step`` and ``grad_step``, which :meth:`compile` compiles.
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
        self.grad_step = LIFRecurrentGradStep(p, dt)
        scale = math.sqrt(2.0 / hidden_size)
        self.input_weights = nn.Parameter(torch.randn(hidden_size, input_size) * scale)
        self.recurrent_weights = nn.Parameter(torch.randn(hidden_size, hidden_size) * scale)
        mask = torch.ones(hidden_size, hidden_size)
        if not autapses:
            mask.fill_diagonal_(0.0)
            with torch.no_grad():
                self.recurrent_weights.mul_(mask)
        self.register_buffer("recurrent_mask", mask, persistent=False)

    def compile(self, *args, **kwargs) -> None:
        """Compile the two step cells, not the loop over time: each sees only ``[B, N]`` tensors,
        so it compiles once (the batch dimension dynamic) whatever the sequence length.

        Arguments are ``torch.compile``'s; the modes that capture CUDA graphs are refused (one graph
        per time step, each overwritten by the next replay).
        """
        mode = kwargs.get("mode")
        if mode in CUDAGRAPH_MODES:
            raise ValueError(
                f"LIFRecurrent.compile: mode {mode!r} captures CUDA graphs, which a cell run once per time "
                "step cannot use; use 'default' or 'max-autotune-no-cudagraphs'"
            )
        kwargs.setdefault("dynamic", True)
        self.step.compile(*args, **kwargs)
        self.grad_step.compile(*args, **kwargs)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``x [T, B, input]`` (float, or integer counts) -> spikes ``[T, B, hidden]`` and the final
        state ``(z, v, i)``, in the weights' dtype."""
        with full_precision(x.device):
            current = input_projection(x, self.input_weights)
            cells = LIFScanCells(self.step, self.grad_step)
            return lif_recurrent_scan(current, self.recurrent_weights * self.recurrent_mask, cells, state)


class LeakyIntegrator(nn.Module):
    """Stateless leaky-integrator cell over time: ``[T, B, N]`` currents -> ``[T, B, N]`` voltages,
    in the currents' dtype (float32 under autocast)."""

    def __init__(self, p: LIParameters = LIParameters(), dt: float = 1e-3) -> None:  # noqa: B008 - frozen
        super().__init__()
        self.p, self.dt = p, dt

    def forward(
        self, current: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        with full_precision(current.device):
            if current.dtype in (torch.float16, torch.bfloat16):
                current = current.float()
            return leaky_integrator_scan(current, self.p, self.dt, state)
