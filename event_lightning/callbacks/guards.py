"""Guards that stop a run early, before it writes a broken checkpoint."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


def _loss_of(outputs: Any) -> torch.Tensor | None:
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, dict) and isinstance(outputs.get("loss"), torch.Tensor):
        return outputs["loss"]
    return None


class NonFiniteLossGuard(Callback):
    """Stops ``fit`` with :class:`NonFiniteLossError` when the training loss is NaN or infinite.

    The loss is ``outputs["loss"]`` (or the returned tensor) of ``training_step``; models with
    manual optimisation return nothing, so for them the logged ``loss_key`` is read instead (at
    the check points only). Per batch the guard only queues device work: it keeps, on the loss's
    device, the position of the first non-finite loss since the last check, and on the host the
    (global step, epoch, batch) of each position. It reads that position back -- one host sync --
    every ``check_every_n_steps`` batches, at the end of every epoch, before validation and before
    any step-based checkpoint save, so no checkpoint is taken after a non-finite loss and
    ``last.ckpt`` keeps the last good state. The error names the global step and the epoch/batch
    of the first non-finite loss. Under DDP every rank stops at the same check (the earliest
    non-finite step over the ranks is all-reduced), so no rank is left waiting in a collective.

    Args:
        check_every_n_steps: batches between host reads. The default keeps the first steps of a
            run free of host syncs (``HostSyncGuard`` checks them) and a long GPU run from
            stalling every step; a NaN is still caught before any checkpoint.
        loss_key: the logged metric used when ``training_step`` returns no loss.
    """

    def __init__(self, check_every_n_steps: int = 20, loss_key: str = "train/loss") -> None:
        if check_every_n_steps < 1:
            raise ValueError(f"check_every_n_steps must be >= 1, found {check_every_n_steps}")
        self.check_every_n_steps = check_every_n_steps
        self.loss_key = loss_key
        self._first_bad: torch.Tensor | None = None  # int64 scalar on the loss's device: position, -1 = none
        self._position: torch.Tensor | None = None  # int64 scalar: positions recorded since the last check
        self._where: list[tuple[int, int, int]] = []  # (global step, epoch, batch) of each position
        self._batches = 0
        self._step_before = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._first_bad = self._position = None
        self._where, self._batches = [], 0

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._step_before = trainer.global_step  # the step this batch's loss belongs to

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._batches += 1
        loss = _loss_of(outputs)
        if loss is not None:
            self._record(loss.detach(), trainer, batch_idx)
        if self._batches % self.check_every_n_steps == 0 or self._checkpoint_may_follow(trainer):
            if loss is None:
                logged = trainer.callback_metrics.get(
                    f"{self.loss_key}_step", trainer.callback_metrics.get(self.loss_key)
                )
                if isinstance(logged, torch.Tensor):
                    self._record(logged.detach(), trainer, batch_idx)
            self._raise_if_bad(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._raise_if_bad(trainer)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._raise_if_bad(trainer)

    def _record(self, loss: torch.Tensor, trainer: pl.Trainer, batch_idx: int) -> None:
        """Queue the finiteness test of ``loss`` on its device (no host read, no host-built tensor)."""
        if self._first_bad is None or self._position is None:
            self._first_bad = torch.full((), -1, dtype=torch.int64, device=loss.device)
            self._position = torch.zeros((), dtype=torch.int64, device=loss.device)
        bad = ~torch.isfinite(loss).all() & (self._first_bad < 0)
        self._first_bad = torch.where(bad, self._position, self._first_bad)
        self._position += 1
        self._where.append((self._step_before, trainer.current_epoch, batch_idx))

    @staticmethod
    def _checkpoint_may_follow(trainer: pl.Trainer) -> bool:
        for callback in trainer.checkpoint_callbacks:
            every = (
                getattr(callback, "_every_n_train_steps", 0) if isinstance(callback, ModelCheckpoint) else 0
            )
            if every >= 1 and trainer.global_step % every == 0:
                return True
            if isinstance(callback, ModelCheckpoint) and callback._train_time_interval is not None:
                return True
        return False

    def _raise_if_bad(self, trainer: pl.Trainer) -> None:
        """Read the first non-finite position back (the one host sync), then start a new stretch."""
        if self._first_bad is None or self._position is None:
            return
        first = self._first_bad
        if getattr(trainer, "world_size", 1) > 1:
            # the earliest non-finite position over the ranks (they run the same batches in step)
            unset = torch.iinfo(torch.int64).max
            first = trainer.strategy.reduce(torch.where(first < 0, unset, first), reduce_op="min")
            first = torch.where(first == unset, -1, first)
        position = int(first)
        if position < 0:
            self._first_bad.fill_(-1)
            self._position.zero_()
            self._where.clear()
            return
        step, epoch, batch = self._where[position]
        last = next(
            (c.last_model_path for c in trainer.checkpoint_callbacks if getattr(c, "last_model_path", "")), ""
        )
        kept = f"the last good checkpoint is {last}" if last else "no checkpoint was written before it"
        raise NonFiniteLossError(
            f"non-finite training loss at global step {step} (epoch {epoch}, batch {batch}); stopping so no "
            f"checkpoint is written from diverged weights; {kept}. Lower the learning rate, clip gradients "
            "(--trainer.gradient_clip_val) or check the data, then resume with --resume last."
        )
