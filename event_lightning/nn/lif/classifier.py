"""The LIF classifier network of norse's POKER-DVS tutorial (used by :mod:`event_lightning.models.lif_classifier`)."""

from __future__ import annotations

import torch
from torch import nn

from event_lightning.nn.lif.layers import LeakyIntegrator, LIFRecurrent
from event_lightning.nn.lif.steps import LIFParameters, LIParameters


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
