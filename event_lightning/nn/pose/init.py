"""Weight initialisation of the reference: Xavier-normal on Conv2d weights, a damped head."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["xavier_init"]


def xavier_init(module: nn.Module, head: nn.Conv2d | None = None, head_div: float = 1.0) -> None:
    """Xavier-normal on every ``nn.Conv2d`` weight below ``module`` (not ConvTranspose2d, not biases).

    ``head``'s weights are then divided by ``head_div`` (the reference divides the CNN's 32->13
    head by 2500, so the first heatmaps are almost zero).
    """
    for sub in module.modules():
        if isinstance(sub, nn.Conv2d):  # Upsample2xConv2d too
            nn.init.xavier_normal_(sub.weight)
    if head is not None and head_div != 1.0:
        with torch.no_grad():
            head.weight.div_(head_div)
