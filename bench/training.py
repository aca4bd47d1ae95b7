"""Measuring a loader pass and a LightningModule's training step (time and peak memory); see
:mod:`bench.rows_methods` for how the rows use them."""

from __future__ import annotations

import gc
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch


@dataclass
class EpochPass:
    """One pass over a train loader: wall time (s), samples, and the batches (when kept)."""

    seconds: float
    samples: int
    batches: list[Any]

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds


def loader_pass(
    datamodule: pl.LightningDataModule,
    count: Callable[[Any], int],
    max_batches: int | None = None,
    keep: int = 0,
) -> EpochPass:
    """Iterate the train loader as a Trainer would (through the DataModule's transfer hooks), up to
    ``max_batches``; keep the first ``keep`` batches."""
    kept: list[Any] = []
    samples = 0
    start = time.perf_counter()
    for k, batch in enumerate(datamodule.train_dataloader()):
        if max_batches is not None and k >= max_batches:
            break
        batch = datamodule.on_after_batch_transfer(datamodule.on_before_batch_transfer(batch, 0), 0)
        samples += count(batch)
        if len(kept) < keep:
            kept.append(batch)
    seconds = time.perf_counter() - start
    if samples == 0:
        raise ValueError("bench: the train loader yielded no samples; enlarge the stand-in or lower batch_size")
    return EpochPass(seconds, samples, kept)


def tensor_bytes(obj: Any) -> int:
    """Bytes of every tensor / array in a (nested) batch, parameters or optimiser state."""
    if isinstance(obj, torch.Tensor):
        return obj.element_size() * obj.numel()
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):  # NamedTuples included
        return sum(tensor_bytes(v) for v in obj)
    return 0


def peak_from_memory_records(records: list[tuple[int, int]]) -> int:
    """Peak of the running sum of ``(time, bytes)`` allocation (+) / free (-) records, in time order,
    above its lowest point before the peak (0 when nothing outlives its allocation above the start).

    Frees of blocks allocated in the window never take the sum below zero; the profiler also
    records frees of blocks allocated while an earlier session ran (an earlier fit's tensors), and
    those would lower every later value by their size: the rise above the low-water mark is the
    step's own peak whenever they come before it.
    """
    running = np.cumsum([nbytes for _, nbytes in sorted(records)], dtype=np.int64)
    if running.size == 0:
        return 0
    low_water = np.minimum.accumulate(np.minimum(running, 0))
    return int((running - low_water).max())


class StepTimer(pl.Callback):
    """Times training steps ``warmup .. warmup + steps - 1`` and measures the peak memory of step
    ``warmup + steps`` (see :mod:`bench.rows_methods`)."""

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup, self.steps = warmup, steps
        self.times: list[float] = []
        self.peak_bytes: int | None = None
        self.memory_method = ""
        self._start = 0.0
        self._profiler: torch.profiler.profile | None = None
        self._cuda_base = 0

    def _sync(self, pl_module: pl.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._sync(pl_module)
        if batch_idx == self.warmup + self.steps:
            # No garbage of earlier fits may be collected inside the measured step: frees of tensors
            # allocated while an earlier step was profiled are recorded in this window and lower its
            # peak (the last LIF classifier's gradients, 1.02 MB: 1.99 MB instead of 3.01 MB at 50
            # bins, and a fitted exponent over T of 1.21 instead of 0.98). Collected now, then the
            # collector paused until the step ends.
            gc.collect()
            gc.disable()
            if pl_module.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(pl_module.device)
                self._cuda_base = torch.cuda.memory_allocated(pl_module.device)
            else:
                activities = [torch.profiler.ProfilerActivity.CPU]
                self._profiler = torch.profiler.profile(activities=activities, profile_memory=True)
                self._profiler.start()
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._sync(pl_module)
        elapsed = time.perf_counter() - self._start
        if self.warmup <= batch_idx < self.warmup + self.steps:
            self.times.append(elapsed)
        elif batch_idx == self.warmup + self.steps:
            if pl_module.device.type == "cuda":
                self.peak_bytes = torch.cuda.max_memory_allocated(pl_module.device) - self._cuda_base
                self.memory_method = "torch.cuda.max_memory_allocated above the step's start"
            elif self._profiler is not None:
                self._profiler.stop()
                records = [
                    (event.start_ns(), event.nbytes())
                    for event in self._profiler.profiler.kineto_results.events()
                    if event.name() == "[memory]" and str(event.device_type()).endswith("CPU")
                ]
                self.peak_bytes = peak_from_memory_records(records)
                self.memory_method = "torch.profiler: peak live bytes of the tensors allocated in the step"
                self._profiler = None
            gc.enable()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        gc.enable()


@dataclass
class TrainMeasurement:
    """Median time (s) of one training step, its batch size, peak memory (bytes) and how."""

    step_s: float
    batch_size: int
    peak_bytes: int | None
    memory_method: str
    state_bytes: int

    @property
    def samples_per_s(self) -> float:
        return self.batch_size / self.step_s


_LIGHTNING_LOGGERS = ("pytorch_lightning", "pytorch_lightning.utilities.rank_zero", "lightning_fabric")


def _as_is(batch: Any) -> Any:
    return batch


def fit_on_batches(
    model: pl.LightningModule,
    batches: list[Any],
    callbacks: list[pl.Callback],
    accelerator: str = "auto",
    precision: str = "32-true",
) -> pl.Trainer:
    """Train ``model`` for one step per held batch: no logger, checkpoints, validation or chatter."""
    trainer = pl.Trainer(
        accelerator=accelerator,
        devices=1,
        precision=precision,
        max_epochs=1,
        limit_train_batches=len(batches),
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    )
    # A DataLoader over the held batches (a plain list would read as a list of loaders).
    loader = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False, collate_fn=_as_is)
    loggers = [logging.getLogger(name) for name in _LIGHTNING_LOGGERS]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.WARNING)  # no "GPU available" chatter per method
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=".*(val_dataloader|num_workers|LeafSpec|Memory block|log_every_n_steps).*"
            )
            trainer.fit(model, train_dataloaders=loader)
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.setLevel(level)
    return trainer


def measure_training(
    model: pl.LightningModule, batches: list[Any], count: Callable[[Any], int], warmup: int, steps: int
) -> TrainMeasurement:
    """Train ``model`` for ``warmup + steps + 1`` steps on ``batches`` (cycled, held in memory)."""
    total = warmup + steps + 1
    feed = [batches[k % len(batches)] for k in range(total)]
    timer = StepTimer(warmup, steps)
    trainer = fit_on_batches(model, feed, [timer])
    if len(timer.times) != steps:
        raise RuntimeError(f"bench: timed {len(timer.times)} training steps, expected {steps}")
    optim_state = [opt.state_dict()["state"] for opt in trainer.optimizers]
    state_bytes = tensor_bytes(list(model.parameters())) + tensor_bytes(optim_state)
    return TrainMeasurement(
        float(np.median(timer.times)), count(feed[0]), timer.peak_bytes, timer.memory_method, state_bytes
    )
