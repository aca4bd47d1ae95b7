"""A callback that times a run's training and validation steps and records their losses.

Added to a run of the real entrypoint (``--trainer.callbacks+=bench.step_clock.StepClock
--trainer.callbacks.report=PATH``), it writes ``PATH`` (JSON) at the end of ``fit``:

* ``train_s`` / ``val_s``: wall time of every training / validation step (the device synchronised
  before and after, so a step's time is its own); the first training step of a compiled model
  includes compiling it;
* ``train_loss``: the loss of every training step (``outputs`` of ``training_step``, or the logged
  ``train/...loss`` of a model with manual optimisation), ``val_loss`` the logged ``val/loss``;
* ``batch_size``: samples in the first training batch; ``peak_bytes``: the device's peak memory
  (CUDA only, else null); ``device``: where the model ran;
* ``loader_samples_per_s`` (with ``loader_batches > 0``): a fresh pass of the DataModule's train
  loader as the trainer built it (workers, pinning), ``loader_batches`` batches after one warm-up
  batch (which starts the workers), no step in between.

Reading the loss and synchronising cost a host sync per step: this is a measurement tool, not a
callback for production runs.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch


def _batch_size(batch: Any) -> int:
    """Samples in a batch: the second dimension of a time-first tensor, else the first of the first tensor."""
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor) and batch[0].dim() == 5:
        return int(batch[0].shape[1])  # frames [T, B, P, H, W]
    if isinstance(batch, dict):
        for key in ("target", "label", "labels", "ms_start"):
            if isinstance(batch.get(key), torch.Tensor):
                return int(batch[key].shape[0])
        if isinstance(batch.get("frames"), torch.Tensor):
            return int(batch["frames"].shape[1])
    label = getattr(batch, "label", None)
    if isinstance(label, torch.Tensor):
        return int(label.shape[0])
    if isinstance(batch, (list, tuple)):
        for item in reversed(batch):
            if isinstance(item, torch.Tensor) and item.dim() >= 1:
                return int(item.shape[0])
    return 0


def _train_loss(outputs: Any, trainer: pl.Trainer) -> float | None:
    loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
    if not isinstance(loss, torch.Tensor):
        logged = trainer.callback_metrics
        names = sorted(k for k in logged if k.startswith("train/") and "loss" in k)
        preferred = [k for k in ("train/loss_step", "train/loss") if k in logged]
        loss = logged[(preferred or names or [None])[0]] if (preferred or names) else None
    return float(loss.detach().float()) if isinstance(loss, torch.Tensor) else None


class StepClock(pl.Callback):
    """Times steps and records losses (see the module docstring).

    Args:
        report: JSON file written at the end of ``fit`` (rank 0).
        loader_batches: batches of the loader pass timed at the end (0: none).
    """

    def __init__(self, report: str, loader_batches: int = 0) -> None:
        self.report = report
        self.loader_batches = loader_batches
        self.train_s: list[float] = []
        self.val_s: list[float] = []
        self.train_loss: list[float | None] = []
        self.batch_size = 0
        self._start = 0.0

    def _now(self, pl_module: pl.LightningModule) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int):
        if not self.train_s:
            self.batch_size = _batch_size(batch)
        self._start = self._now(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.train_s.append(self._now(pl_module) - self._start)
        self.train_loss.append(_train_loss(outputs, trainer))

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._start = self._now(pl_module)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking:
            self.val_s.append(self._now(pl_module) - self._start)

    def _loader_rate(self, trainer: pl.Trainer) -> float | None:
        datamodule = trainer.datamodule
        if datamodule is None:
            return None
        batches = iter(datamodule.train_dataloader())
        next(batches)  # starts the workers
        samples, start = 0, time.perf_counter()
        for _, batch in zip(range(self.loader_batches), batches, strict=False):
            samples += _batch_size(batch)
        seconds = time.perf_counter() - start
        return samples / seconds if samples and seconds > 0 else None

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        val_loss = trainer.callback_metrics.get("val/loss")
        cuda = pl_module.device.type == "cuda"
        result = {
            "device": str(pl_module.device),
            "batch_size": self.batch_size,
            "train_s": self.train_s,
            "val_s": self.val_s,
            "train_loss": self.train_loss,
            "val_loss": None if val_loss is None else float(val_loss),
            "peak_bytes": torch.cuda.max_memory_allocated(pl_module.device) if cuda else None,
            "loader_samples_per_s": self._loader_rate(trainer) if self.loader_batches else None,
        }
        Path(self.report).parent.mkdir(parents=True, exist_ok=True)
        Path(self.report).write_text(json.dumps(result, allow_nan=True))


def finite(values: list[float | None]) -> bool:
    """Whether every recorded value exists and is finite."""
    return bool(values) and all(v is not None and math.isfinite(v) for v in values)
