"""The LIF classifier network of norse's POKER-DVS tutorial (used by :mod:`event_lightning.models.lif_classifier`)."""

from __future__ import annotations

import torch
from torch import nn

from event_lightning.nn.lif.layers import LeakyIntegrator, LIFRecurrent, full_precision
from event_lightning.nn.lif.steps import LIFParameters, LIParameters


class LIFClassifierNet(nn.Module):
    """norse's POKER-DVS tutorial network: flatten -> recurrent LIF -> Linear (no bias) -> LI.

    Input frames ``[T, B, P, H, W]`` (any trailing shape; flattened in (P, H, W) order; float or
    integer counts); output the readout voltages ``[T, B, num_classes]``. Runs in float32 under
    autocast (see :func:`~event_lightning.nn.lif.layers.full_precision`).
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
        """What ``compile: true`` compiles: the recurrent layer, whose :meth:`LIFRecurrent.compile`
        compiles its step cells (the readout and the input projection are a few matmuls)."""
        return [self.lif]

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        with full_precision(frames.device):
            spikes, _ = self.lif(frames.flatten(2))
            voltages, _ = self.readout(self.fc_out(spikes))
        return voltages
