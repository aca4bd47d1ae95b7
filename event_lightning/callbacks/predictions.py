"""Writes what ``predict`` returns to a ``.npz`` file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter


def stack_predictions(batches: Sequence[Any]) -> dict[str, np.ndarray]:
    """Concatenate per-batch outputs along dim 0 into named numpy arrays.

    A batch output is a tensor (saved as ``prediction``) or a mapping of names to tensors (each
    saved under its name); every batch must have the same keys.
    """
    columns: dict[str, list[np.ndarray]] = {}
    for index, output in enumerate(batches):
        named = output if isinstance(output, dict) else {"prediction": output}
        if columns and set(named) != set(columns):
            raise ValueError(f"predict batch {index} returned keys {sorted(named)}, earlier batches {sorted(columns)}")
        for name, value in named.items():
            array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
            columns.setdefault(name, []).append(array.reshape(1) if array.ndim == 0 else array)
    return {name: np.concatenate(parts) for name, parts in columns.items()}


class PredictionFileWriter(BasePredictionWriter):
    """Saves all predictions of a ``predict`` run as one ``.npz``, one array per output name.

    The file is ``path`` or, by default, ``predictions.npz`` in the run's log directory (under
    DDP, ``predictions_rank<r>.npz`` per process). Arrays keep the sample order of the predict
    dataloader; see each model's ``predict_step`` for its names and shapes.
    """

    def __init__(self, path: str | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.path = path
        self.written: Path | None = None

    def write_on_epoch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, predictions: Sequence[Any], batch_indices: Any
    ) -> None:
        if not predictions:
            return
        if isinstance(predictions[0], list):  # several predict dataloaders: one list each
            predictions = [batch for loader in predictions for batch in loader]
        suffix = f"_rank{trainer.global_rank}" if trainer.world_size > 1 else ""
        target = Path(self.path) if self.path else Path(trainer.log_dir or ".") / "predictions.npz"
        target = target.with_name(f"{target.stem}{suffix}{target.suffix}")
        target.parent.mkdir(parents=True, exist_ok=True)
        np.savez(target, **stack_predictions(predictions))
        self.written = target
