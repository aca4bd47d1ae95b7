"""The validation confusion matrix of a classifier: :class:`ConfusionMatrixLogger`."""

from __future__ import annotations

import warnings
from typing import Any

import pytorch_lightning as pl
import torch

from event_lightning.callbacks.figure_budget import DEFAULT_SHARE
from event_lightning.callbacks.tensorboard_figures.classes import ForwardOutput, batch_labels, class_predictions
from event_lightning.callbacks.tensorboard_figures.periodic import _PeriodicFigureCallback
from event_lightning.viz.canvas_figures import confusion_matrix_canvas


def add_to_confusion(counts: torch.Tensor, labels: torch.Tensor, predictions: torch.Tensor) -> None:
    """Add one batch to flat counts ``[C * C]`` (index ``label * C + prediction``), on the device.

    ``index_add_`` rather than ``bincount``: bincount sizes its output from the largest value,
    which on a GPU is a read back to the host in every step.
    """
    n_classes = int(round(counts.numel() ** 0.5))
    flat = labels.long() * n_classes + predictions.long()
    counts.index_add_(0, flat, torch.ones_like(flat))


class ConfusionMatrixLogger(_PeriodicFigureCallback):
    """Log the confusion matrix of the whole validation epoch (``add_image`` under ``tag``).

    On a logging epoch a forward hook on the LightningModule keeps each step's class scores
    ``[B, num_classes]`` (what ``self(...)`` returned); after the step they are counted against the
    batch's labels on the device (no host read in any step). At the end of the epoch the counts are
    read once and drawn (:func:`event_lightning.viz.canvas_figures.confusion_matrix_canvas`), with the DataModule's
    ``class_names`` when it has them. Under DDP the matrix covers global rank 0's share of the
    validation set.

    Args:
        every_n_epochs: log on validation epochs ``0, n, 2n, ...``.
        tag: TensorBoard image tag.
        time_budget: share of the training wall time all the run's figures may take (default 0.05;
            null: every candidate epoch); see :mod:`event_lightning.callbacks.figure_budget`.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        tag: str = "val/confusion_matrix",
        time_budget: float | None = DEFAULT_SHARE,
    ) -> None:
        super().__init__(every_n_epochs, "ConfusionMatrixLogger", time_budget)
        self.tag = tag
        self._scores = ForwardOutput()
        self._counts: torch.Tensor | None = None
        self._warned_no_scores = False

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_epoch_start(trainer, pl_module)
        self._counts = None
        if self._writer(trainer) is not None:
            self._scores.start(pl_module)

    def _after_step(self, batch: Any, dataloader_idx: int) -> None:
        if not self._scores.active or dataloader_idx != 0:
            return
        scores, self._scores.output = self._scores.output, None
        labels = batch_labels(batch)
        predictions = class_predictions(scores, labels)
        if predictions is not None:
            if self._counts is None:
                n_classes = scores.shape[-1]
                self._counts = torch.zeros(n_classes * n_classes, dtype=torch.long, device=labels.device)
            add_to_confusion(self._counts, labels, predictions)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._scores.stop()
        super().on_validation_epoch_end(trainer, pl_module)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._scores.stop()

    def _log_first_batch(self, writer: Any, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any) -> None:
        counts, self._counts = self._counts, None
        if counts is None:
            if not self._warned_no_scores:
                self._warned_no_scores = True
                warnings.warn(
                    f"ConfusionMatrixLogger: {type(pl_module).__name__}'s forward did not return class scores "
                    "[B, num_classes] for batches with integer labels; no confusion matrix is logged",
                    stacklevel=3,
                )
            return
        n_classes = int(round(counts.numel() ** 0.5))
        names = getattr(getattr(trainer, "datamodule", None), "class_names", None)
        names = names if names is not None and len(names) == n_classes else None
        canvas = confusion_matrix_canvas(
            counts.view(n_classes, n_classes).cpu(), class_names=names, title=f"epoch {trainer.current_epoch}"
        )
        self._log(writer, self.tag, canvas, trainer.global_step)
