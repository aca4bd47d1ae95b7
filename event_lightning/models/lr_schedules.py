"""The learning-rate schedules a model may name in its config (``lr_schedule``), built the same way for each."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch

LR_SCHEDULES = ("cosine", "none")


def check_lr_schedule(name: str) -> None:
    """Refuse a schedule name outside :data:`LR_SCHEDULES` (a usage error at construction)."""
    if name not in LR_SCHEDULES:
        raise ValueError(f"model.lr_schedule must be one of {LR_SCHEDULES}, found {name!r}")


def with_lr_schedule(optimizer: torch.optim.Optimizer, name: str, module: pl.LightningModule) -> Any:
    """``configure_optimizers``'s return value: ``optimizer`` alone (``none``; the module needs no trainer)
    or with a per-epoch cosine decay from the optimiser's rate to 0 over the trainer's ``max_epochs``."""
    if name == "none":
        return optimizer
    max_epochs = module.trainer.max_epochs
    epochs = max_epochs if max_epochs and max_epochs > 0 else 1
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
