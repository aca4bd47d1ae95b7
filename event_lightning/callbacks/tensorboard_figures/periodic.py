"""What every periodic TensorBoard figure callback shares: when to log (period, time budget), where, the write."""

from __future__ import annotations

import struct
import warnings
import zlib
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import pytorch_lightning as pl
from matplotlib.figure import Figure
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.compat.proto.summary_pb2 import Summary

from event_lightning.callbacks.energy import not_measured
from event_lightning.callbacks.figure_budget import DEFAULT_SHARE, FigureTimeBudget, budgeted_callbacks, draws_now
from event_lightning.viz.canvas import Canvas
from event_lightning.viz.spikes import figure_to_image


def _experiment(trainer: pl.Trainer) -> Any | None:
    """The SummaryWriter of the trainer's first TensorBoard logger, or None."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


def png_bytes(image: np.ndarray, level: int = 1) -> bytes:
    """A uint8 ``[H, W, 3]`` RGB image as PNG file bytes (8-bit RGB, no row filter, zlib ``level``).

    Written here rather than by Pillow: ``Image.save`` first imports five format plugins (15-30 ms
    on this project's CPU machine, once per process), which is a large share of the figures of a
    fit lasting a second; the PNG layout is a signature and three chunks.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"png_bytes: expected uint8 [H, W, 3], found {image.dtype} {image.shape}")
    height, width, _ = image.shape
    rows = np.zeros((height, 1 + 3 * width), dtype=np.uint8)  # each row: filter type 0 (none), then RGB
    rows[:, 1:] = image.reshape(height, 3 * width)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits per channel, RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), level))
        + chunk(b"IEND", b"")
    )


def add_png(writer: Any, tag: str, image: np.ndarray, step: int) -> None:
    """Write a uint8 ``[H, W, 3]`` image to a SummaryWriter as a PNG (:func:`png_bytes`).

    ``SummaryWriter.add_image`` passes every image through float32 and a clip, then encodes it at
    zlib level 6: about 15 ms for a 900 x 250 image on a CPU, more than drawing a canvas. The
    summary written here is the one it writes (same tag, step, PNG image), read back by
    TensorBoard alike. A writer without a ``file_writer`` (not torch's SummaryWriter) gets
    ``add_image``.
    """
    file_writer = getattr(writer, "file_writer", None)
    if not hasattr(file_writer, "add_summary"):
        writer.add_image(tag, image, global_step=step, dataformats="HWC")
        return
    height, width, channels = image.shape
    encoded = Summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=png_bytes(image))
    file_writer.add_summary(Summary(value=[Summary.Value(tag=tag, image=encoded)]), step)


class _PeriodicFigureCallback(pl.Callback, ABC):
    """Shared rules: every ``every_n_epochs`` validation epochs within a time budget, rank 0 only, warn once
    without TensorBoard.

    During ``fit`` a validation epoch whose number is a multiple of ``every_n_epochs`` (or the fit's
    last) draws only when the :class:`~event_lightning.callbacks.figure_budget.FigureTimeBudget`
    allows it: always on the last epoch, the first time as early as it can in a fit projected to
    last a minute or more, otherwise while the drawings keep under ``time_budget`` of the training
    wall time (shared by the run's figure callbacks). The decision is taken once per validation
    epoch, at its start, so that every hook of the epoch agrees.

    Subclasses draw in :meth:`_log_first_batch`, given the first batch of the first validation
    loader of a logging epoch. It is called at the end of that validation epoch, not in the batch's
    step: drawing reads the tensors on the host, and inside a step that would make the step wait for
    the device. Until then the callback holds a reference to the batch (and whatever a subclass
    captured during its forward pass). Work a subclass needs after every validation step (device
    operations only) goes in :meth:`_after_step`.
    """

    def __init__(self, every_n_epochs: int, name: str, time_budget: float | None = DEFAULT_SHARE) -> None:
        super().__init__()
        if every_n_epochs < 1:
            raise ValueError(f"{name}.every_n_epochs must be >= 1, found {every_n_epochs}")
        self.every_n_epochs = every_n_epochs
        self.figure_budget = FigureTimeBudget(time_budget)
        self._name = name
        self._warned = False
        self._draws_this_epoch = False
        self._pending: tuple[Any, Any] | None = None  # (writer, batch) to draw at the end of the epoch

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.figure_budget.start(budgeted_callbacks(trainer))

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._draws_this_epoch = draws_now(trainer, self.every_n_epochs, self.figure_budget)

    def _writer(self, trainer: pl.Trainer) -> Any | None:
        """The SummaryWriter when this validation epoch should log, otherwise None."""
        if not self._draws_this_epoch:
            return None
        writer = _experiment(trainer)
        if writer is None and not self._warned:
            self._warned = True
            warnings.warn(
                f"{self._name}: the trainer has no TensorBoardLogger (trainer.logger), so no figures are "
                "logged; set trainer.logger to pytorch_lightning.loggers.TensorBoardLogger",
                stacklevel=2,
            )
        return writer

    def _first_batch_writer(self, trainer: pl.Trainer, batch_idx: int, dataloader_idx: int) -> Any | None:
        """The SummaryWriter on the first batch of the first validation loader of a logging epoch."""
        if batch_idx != 0 or dataloader_idx != 0:
            return None
        return self._writer(trainer)

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._after_step(batch, dataloader_idx)
        writer = self._first_batch_writer(trainer, batch_idx, dataloader_idx)
        if writer is not None:
            self._pending = (writer, batch)

    def _after_step(self, batch: Any, dataloader_idx: int) -> None:
        """What a subclass does after every validation step (on the device only: no host reads)."""

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._pending is not None:
            (writer, batch), self._pending = self._pending, None
            # a figure's model pass is no sample of the stage's energy figures
            with not_measured(), self.figure_budget.drawing():
                self._log_first_batch(writer, trainer, pl_module, batch)

    @abstractmethod
    def _log_first_batch(self, writer: Any, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any) -> None:
        """Draw the figures of this validation batch and write them with :meth:`_log`."""

    @staticmethod
    def _log(writer: Any, tag: str, fig: Figure | Canvas, step: int) -> None:
        add_png(writer, tag, fig.render() if isinstance(fig, Canvas) else figure_to_image(fig), step)
