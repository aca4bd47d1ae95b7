"""Writes what ``predict`` returns to a ``.npz`` file, with the sample behind every row."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter
from pytorch_lightning.utilities.rank_zero import rank_zero_info, rank_zero_warn

from event_lightning.data.loading.bad_samples import BadSampleLedger
from event_lightning.data.loading.predict_samples import PredictSamples, sample_columns

# the split named when a DataModule does not say which one its predict loader serves
UNNAMED_SPLIT = "predict"


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


def predicted_indices(batch_indices: Sequence[Sequence[int]], skipped: set[int]) -> list[int]:
    """The dataset index of every predicted row: the loader's batches in order, without the samples
    ``on_bad_sample: skip`` left out of them."""
    return [int(i) for batch in batch_indices for i in batch if int(i) not in skipped]


class PredictionFileWriter(BasePredictionWriter):
    """Saves all predictions of a ``predict`` run as one ``.npz``, one array per output name, and
    says where.

    The file is ``path`` or, by default, ``predictions.npz`` in the run's log directory (under
    DDP, ``predictions_rank<r>.npz`` per process). Arrays keep the sample order of the predict
    dataloader; see each model's ``predict_step`` for its names and shapes. Beside them, for every
    row: ``sample_index`` (the index in the predict loader's dataset), ``sample_split`` (the split
    it serves) and, where the DataModule knows each sample's file, ``sample_file`` (see
    :mod:`event_lightning.data.loading.predict_samples`); with several predict loaders also
    ``sample_dataloader``. A model whose rows are not one per sample gets no sample columns (with
    a warning).
    """

    def __init__(self, path: str | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.path = path
        self.written: Path | None = None
        self._ledger_marks: dict[str, int] | None = None

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        ledger = self._ledger(trainer)
        self._ledger_marks = ledger.marks() if ledger is not None else None

    @staticmethod
    def _ledger(trainer: pl.Trainer) -> BadSampleLedger | None:
        ledger = getattr(trainer.datamodule, "bad_samples", None)
        return ledger if isinstance(ledger, BadSampleLedger) else None

    def write_on_epoch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, predictions: Sequence[Any], batch_indices: Any
    ) -> None:
        if not predictions:
            return
        per_loader = predictions if isinstance(predictions[0], list) else [predictions]  # one list per loader
        columns = stack_predictions([batch for loader in per_loader for batch in loader])
        ids = self._sample_columns(trainer, batch_indices, len(per_loader), len(next(iter(columns.values()))))
        clash = sorted(set(ids) & set(columns))
        if clash:
            raise ValueError(f"predict_step returned {clash}: names the predictions file gives the sample ids")
        columns.update(ids)
        suffix = f"_rank{trainer.global_rank}" if trainer.world_size > 1 else ""
        target = Path(self.path) if self.path else Path(trainer.log_dir or ".") / "predictions.npz"
        target = target.with_name(f"{target.stem}{suffix}{target.suffix}")
        target.parent.mkdir(parents=True, exist_ok=True)
        np.savez(target, **columns)
        self.written = target
        others = f" (rank 0; each of the {trainer.world_size} ranks writes its own file)" if suffix else ""
        rank_zero_info(f"predict: wrote {len(columns)} arrays ({', '.join(columns)}) to {target}{others}")

    def _sample_columns(
        self, trainer: pl.Trainer, batch_indices: Any, n_loaders: int, n_rows: int
    ) -> dict[str, np.ndarray]:
        if not batch_indices or not all(batch_indices):
            rank_zero_warn("predictions: the predict loader reports no sample indices; the file has no sample_* arrays")
            return {}
        ledger = self._ledger(trainer)
        skipped = set()
        if ledger is not None:
            skipped = {record.index for record in ledger.records(self._ledger_marks, stage="predict")}
        describe = getattr(trainer.datamodule, "predict_samples", None)
        samples = describe() if callable(describe) else PredictSamples(UNNAMED_SPLIT)
        parts = []
        for loader, indices in enumerate(batch_indices[:n_loaders]):
            part = sample_columns(predicted_indices(indices, skipped), samples)
            if n_loaders > 1:
                part["sample_dataloader"] = np.full(len(part["sample_index"]), loader, dtype=np.int64)
            parts.append(part)
        columns = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
        if len(columns["sample_index"]) != n_rows:
            rank_zero_warn(
                f"predictions: predict_step returned {n_rows} rows for {len(columns['sample_index'])} samples; "
                "the file has no sample_* arrays"
            )
            return {}
        return columns
