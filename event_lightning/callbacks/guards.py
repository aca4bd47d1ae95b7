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
    manual optimisation return nothing, so for them the logged ``loss_key`` is read instead.
    Checking stays on the loss's device (no host sync) and is read back every
    ``check_every_n_steps`` batches and always before a checkpoint can be written (a step save of
    a ModelCheckpoint, the end of an epoch, validation), so no checkpoint is taken after a
    non-finite loss and ``last.ckpt`` keeps the last good state. The error names the global step
    and the epoch/batch of the first non-finite loss.

    Args:
        check_every_n_steps: batches between host reads (1 on CPU costs nothing; on a GPU a
            larger value avoids one synchronisation per step).
        loss_key: the logged metric used when ``training_step`` returns no loss.
    """

    def __init__(self, check_every_n_steps: int = 1, loss_key: str = "train/loss") -> None:
        if check_every_n_steps < 1:
            raise ValueError(f"check_every_n_steps must be >= 1, found {check_every_n_steps}")
        self.check_every_n_steps = check_every_n_steps
        self.loss_key = loss_key
        self._first_bad: torch.Tensor | None = None  # [3] int64: global step, epoch, batch; -1 = none
        self._batches = 0
        self._step_before = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._first_bad, self._batches = None, 0

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
        where = torch.tensor([self._step_before, trainer.current_epoch, batch_idx], device=loss.device)
        if self._first_bad is None:
            self._first_bad = torch.full_like(where, -1)
        bad = ~torch.isfinite(loss).all() & (self._first_bad[0] < 0)
        self._first_bad = torch.where(bad, where, self._first_bad)

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
        if self._first_bad is None:
            return
        step, epoch, batch = (int(v) for v in self._first_bad.tolist())
        if step < 0:
            return
        last = next(
            (c.last_model_path for c in trainer.checkpoint_callbacks if getattr(c, "last_model_path", "")), ""
        )
        kept = f"the last good checkpoint is {last}" if last else "no checkpoint was written before it"
        raise NonFiniteLossError(
            f"non-finite training loss at global step {step} (epoch {epoch}, batch {batch}); stopping so no "
            f"checkpoint is written from diverged weights; {kept}. Lower the learning rate, clip gradients "
            "(--trainer.gradient_clip_val) or check the data, then resume with --resume last."
        )
