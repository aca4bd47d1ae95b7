"""A callback for the DDP tests: what each rank's training loader and transforms see at every epoch start."""

from __future__ import annotations

import json
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback


class TrainingEpochProbe(Callback):
    """Writes ``epochs_rank<R>.json`` to ``report_dir``: per epoch, the training transforms' epoch
    counter (``datamodule.transforms.epoch``) and the sample indices of the rank's shard."""

    def __init__(self, report_dir: str) -> None:
        self.report_dir = Path(report_dir)
        self.epochs: list[dict] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epochs.append(
            {
                "epoch": trainer.current_epoch,
                "transform_epoch": trainer.datamodule.transforms.epoch.get(),
                "indices": list(trainer.train_dataloader.sampler),
            }
        )

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.report_dir.mkdir(parents=True, exist_ok=True)
        (self.report_dir / f"epochs_rank{trainer.global_rank}.json").write_text(json.dumps(self.epochs))
