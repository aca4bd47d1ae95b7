"""Checkpointing that keeps the newest state in ``last.ckpt`` and never leaves a half-written file.

* Every checkpoint is written to a hidden ``.<name>.partial`` file in the same folder, flushed to
  disk and moved into place with ``os.replace`` (atomic on POSIX and Windows), so a kill or a full
  disk during a write leaves the previous checkpoint intact: :class:`AtomicCheckpointIO`, a
  Lightning CheckpointIO plugin that the callback installs (docs/contributing.md says why).
* ``last.ckpt`` follows every epoch and, with ``every_n_train_steps``, every N steps. It is always
  the run's newest state: overwritten in place, never versioned to ``last-v1.ckpt``.
* The callback's state (best scores, top-k files, the path of ``last.ckpt``) is stored under one
  fixed key, so it is restored on resume even when ``--checkpoint.*`` flags changed (Lightning keys
  it by monitor, mode and save frequency and silently drops it when one of them changes), and
  even when the run folder was moved or renamed since (paths are re-anchored in the new folder).
* SIGTERM (Lightning's signal connector turns it into ``SIGTERMException`` at the next batch
  boundary) and a first Ctrl-C (made to take the same path, so no optimiser step is cut in half)
  write ``last.ckpt`` before the process exits; a second Ctrl-C stops at once. Other exceptions do
  not write, so a crash (or a non-finite loss) never replaces the last good checkpoint.
"""

from __future__ import annotations

import os
import re
import signal
import threading
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.cloud_io import _is_local_file_protocol
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins.io import TorchCheckpointIO
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException
from pytorch_lightning.utilities.rank_zero import rank_zero_info

PARTIAL_SUFFIX = ".partial"
STATE_KEY = "RunCheckpoint"
_PATH_STATE_KEYS = ("best_model_path", "kth_best_model_path", "last_model_path")
_stop_request = {"signal": signal.SIGTERM}  # the last signal that asked fit to stop gracefully


def requested_stop_signal() -> signal.Signals:
    """The signal behind the last graceful stop (SIGTERM, or SIGINT for Ctrl-C), for the exit status."""
    return _stop_request["signal"]


def partial_path(filepath: str | Path) -> Path:
    """Where the checkpoint for ``filepath`` is written before it is moved into place."""
    path = Path(filepath)
    return path.with_name(f".{path.name}{PARTIAL_SUFFIX}")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's TorchCheckpointIO, writing each local checkpoint atomically.

    ``torch.save`` streams into :func:`partial_path` (same folder, so the rename never crosses
    file systems), the file is fsynced and moved into place with ``os.replace``; a failure leaves
    the previous file untouched and removes the partial one. Remote paths keep Lightning's fsspec
    transaction. :class:`RunCheckpoint` installs it when the Trainer has the default CheckpointIO.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or not _is_local_file_protocol(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = partial_path(path)
        try:
            with open(partial, "wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint with atomic writes, ``last.ckpt`` after every epoch / N steps, and interrupt saves.

    Lightning 2.6 writes ``last.ckpt`` only when a monitored top-k checkpoint was written in the
    same step, so a run monitoring ``val/acc`` whose last epochs did not improve would resume from
    an older epoch and repeat them; with ``every_n_train_steps`` and a validation-only monitor it
    writes nothing until the first validation. Here ``last.ckpt`` follows both.

    Args:
        save_on_interrupt: on SIGTERM or a first Ctrl-C during ``fit``, write ``last.ckpt``
            (the state after the last finished training batch) before exiting.
        Other arguments: as :class:`~pytorch_lightning.callbacks.ModelCheckpoint`.
    """

    def __init__(
        self,
        dirpath: str | Path | None = None,
        filename: str | None = None,
        monitor: str | None = None,
        verbose: bool = False,
        save_last: bool | Literal["link"] | None = None,
        save_top_k: int = 1,
        save_on_exception: bool = False,
        save_weights_only: bool = False,
        mode: str = "min",
        auto_insert_metric_name: bool = True,
        every_n_train_steps: int | None = None,
        train_time_interval: timedelta | None = None,
        every_n_epochs: int | None = None,
        save_on_train_epoch_end: bool | None = None,
        enable_version_counter: bool = True,
        save_on_interrupt: bool = True,
    ) -> None:
        super().__init__(
            dirpath=dirpath,
            filename=filename,
            monitor=monitor,
            verbose=verbose,
            save_last=save_last,
            save_top_k=save_top_k,
            save_on_exception=save_on_exception,
            save_weights_only=save_weights_only,
            mode=mode,
            auto_insert_metric_name=auto_insert_metric_name,
            every_n_train_steps=every_n_train_steps,
            train_time_interval=train_time_interval,
            every_n_epochs=every_n_epochs,
            save_on_train_epoch_end=save_on_train_epoch_end,
            enable_version_counter=enable_version_counter,
        )
        self.save_on_interrupt = save_on_interrupt

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        # Lightning's default writer stages the file in the system temp folder (moved, i.e. copied
        # when that is another file system, without fsync) after serialising it into memory; a
        # CheckpointIO of the user's own choosing is left alone.
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()

    @property
    def state_key(self) -> str:
        # Lightning's key includes monitor, mode and the save frequencies: a resume that changes
        # one of them would not restore this state and write last-v1.ckpt beside an old last.ckpt.
        return STATE_KEY

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # A checkpoint written before the fixed key holds the state under Lightning's key
        # ("RunCheckpoint{'monitor': ...}"): adopt it, so such runs resume without a rewind too.
        states = checkpoint.get("callbacks")
        if isinstance(states, dict) and STATE_KEY not in states:
            ours = [key for key in states if isinstance(key, str) and key.startswith(f"{STATE_KEY}{{")]
            if len(ours) == 1:
                states[STATE_KEY] = states.pop(ours[0])

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        saved_dir, here = state.get("dirpath"), self.dirpath
        if saved_dir and here and os.path.normpath(str(saved_dir)) != os.path.normpath(str(here)):
            # the run folder was moved or renamed: the same files now live under this dirpath
            state = _reanchored(state, str(saved_dir), str(here))
        elif saved_dir and here:
            state["dirpath"] = here  # the same folder spelt differently ("runs/x/" and "runs/x")
        if state.get("monitor") != self.monitor:
            # scores of another metric cannot rank this one's checkpoints; keep only last.ckpt's path
            rank_zero_info(
                f"checkpoint.monitor changed from {state.get('monitor')!r} to {self.monitor!r}: the top-k "
                "ranking starts afresh (the files saved so far stay where they are)"
            )
            self.last_model_path = state.get("last_model_path") or self.last_model_path
            return
        super().load_state_dict(state)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        _stop_request["signal"] = signal.SIGTERM
        self._sigint_installed = False
        if self.save_on_interrupt and threading.current_thread() is threading.main_thread():
            self._previous_sigint = signal.signal(signal.SIGINT, self._sigint_handler(trainer))
            self._sigint_installed = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_sigint()
        super().on_train_end(trainer, pl_module)

    @staticmethod
    def _sigint_handler(trainer: pl.Trainer) -> Any:
        def stop_after_this_batch(signum: int, frame: Any) -> None:
            if trainer.received_sigterm:  # the second Ctrl-C: stop now
                raise KeyboardInterrupt
            rank_zero_info(
                "Ctrl-C: stopping after this batch and writing last.ckpt (press again to stop now)"
            )
            _stop_request["signal"] = signal.SIGINT
            # Lightning checks this flag at every batch boundary and raises SIGTERMException there
            trainer._signal_connector.received_sigterm = True

        return stop_after_this_batch

    def _restore_sigint(self) -> None:
        if getattr(self, "_sigint_installed", False):
            previous = self._previous_sigint
            signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)
            self._sigint_installed = False

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._ensure_last(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_deferred(trainer)
            self._ensure_last(trainer)

    def _save_deferred(self, trainer: pl.Trainer) -> None:
        # Lightning defers a step save whose monitor (e.g. val/acc) is not logged yet and performs
        # it only in on_validation_end, which does not save when saving happens at train epoch end
        # (validation every epoch): the top-k checkpoint of the epoch's last step would be lost.
        if not self._defer_save_until_validation or self._should_skip_saving_checkpoint(trainer):
            return
        candidates = self._monitor_candidates(trainer)
        if self.monitor in candidates:
            self._save_topk_checkpoint(trainer, candidates)
            self._save_last_checkpoint(trainer, candidates)
            self._defer_save_until_validation = False

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        every = self._every_n_train_steps
        last_batch = getattr(trainer.fit_loop.epoch_loop.batch_progress, "is_last_batch", False)
        # The end of the epoch saves anyway (after validation, with fresh metrics).
        if every >= 1 and trainer.global_step % every == 0 and not last_batch:
            # Lightning skips every save at a step that was already saved; a step save of last.ckpt
            # alone must not stop a deferred top-k save of the same step after validation.
            previous = self._last_global_step_saved
            self._ensure_last(trainer)
            self._last_global_step_saved = previous

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._restore_sigint()
        super().on_exception(trainer, pl_module, exception)
        # A first Ctrl-C arrives here as SIGTERMException too (see _sigint_handler); a bare
        # KeyboardInterrupt is the second Ctrl-C and may have cut an optimiser step in half.
        interrupted = isinstance(exception, SIGTERMException)
        if not (interrupted and self.save_on_interrupt and self.save_last):
            return
        if trainer.fast_dev_run or trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        if self._last_global_step_saved != trainer.global_step or not self.last_model_path:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        # (else last.ckpt already holds this step)
        rank_zero_info(
            f"{type(exception).__name__} (stop requested by {requested_stop_signal().name}): "
            f"{self.last_model_path} holds epoch {trainer.current_epoch}, "
            f"global step {trainer.global_step}; continue with --resume last"
        )

    def _ensure_last(self, trainer: pl.Trainer) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            if self._last_global_step_saved != trainer.global_step:
                self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _save_last_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict[str, Any]) -> None:
        # last.ckpt is the run's newest state: written in place, never as last-v1.ckpt beside it
        # (the version counter exists for top-k names that repeat, not for the resume point).
        if re.fullmatch(rf"{re.escape(self.CHECKPOINT_NAME_LAST)}-v\d+", Path(self.last_model_path).stem):
            self.last_model_path = ""  # a versioned file of an older run stays: never delete a checkpoint
        counter, self._enable_version_counter = self._enable_version_counter, False
        try:
            super()._save_last_checkpoint(trainer, monitor_candidates)
        finally:
            self._enable_version_counter = counter


def _reanchored(state: Mapping[str, Any], old_dir: str, new_dir: str) -> dict[str, Any]:
    """``state`` with every path below ``old_dir`` moved below ``new_dir`` (where the file now exists).

    Paths whose file is not in ``new_dir`` are dropped, so the top-k bookkeeping never points at
    (or deletes) a file outside the run.
    """

    def moved(path: Any) -> str | None:
        if not path:
            return None
        relative = os.path.relpath(str(path), old_dir)
        candidate = os.path.join(new_dir, relative)
        return candidate if not relative.startswith("..") and os.path.isfile(candidate) else None

    result = dict(state, dirpath=new_dir)
    for key in _PATH_STATE_KEYS:
        result[key] = moved(state.get(key)) or ""
    best_k = state.get("best_k_models") or {}
    result["best_k_models"] = {moved(p): score for p, score in best_k.items() if moved(p)}
    return result
