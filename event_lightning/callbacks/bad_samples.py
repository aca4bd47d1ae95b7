"""End-of-epoch report of the samples skipped under ``data.on_bad_sample: skip``."""

from __future__ import annotations

import logging
import warnings

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.trainer.states import TrainerFn

from event_lightning.data.loading.bad_samples import BadSampleLedger, BadSampleWarning, SkippedSample

__all__ = ["BadSampleReporter"]

log = logging.getLogger(__name__)


class BadSampleReporter(Callback):
    """Logs how many samples the DataModule skipped in each train / val / test epoch.

    Reads the :class:`BadSampleLedger` found as ``trainer.datamodule.<ledger_attribute>`` (every
    event DataModule has one as ``bad_samples``); does nothing for DataModules without one or
    runs given bare DataLoaders. At the end of each epoch it logs

    * ``data/skipped_samples_<stage>``: samples dropped from this epoch's batches (``stage`` is
      ``train``, ``val`` or ``test``; a file read several times per epoch counts each time);
    * ``data/skipped_files_setup``: files the DataModule left out while building its splits;

    summed over processes under DDP, and warns (:class:`BadSampleWarning` and the log) with the
    total and the bad files when it is not zero. Setup-time drops are reported once, when the
    run starts. Samples are counted when read, so a batch prefetched but never used (e.g. with
    ``limit_train_batches``) can count in the epoch that read it.

    Args:
        ledger_attribute: name of the ledger attribute of the DataModule.
    """

    STAGES = ("train", "val", "test")

    def __init__(self, ledger_attribute: str = "bad_samples") -> None:
        self.ledger_attribute = ledger_attribute
        self._marks: dict[str, dict[str, int]] = {}
        self._reported_setup: set[str] = set()

    def _ledger(self, trainer: pl.Trainer) -> BadSampleLedger | None:
        ledger = getattr(trainer.datamodule, self.ledger_attribute, None) if trainer.datamodule else None
        return ledger if isinstance(ledger, BadSampleLedger) else None

    def _report_setup(self, trainer: pl.Trainer) -> None:
        ledger = self._ledger(trainer)
        if ledger is None:
            return
        new = [r for r in ledger.setup_records() if r.file not in self._reported_setup]
        if new:
            self._reported_setup.update(r.file for r in new)
            # files can be left out whatever the policy (e.g. DHP19 recordings without labels)
            policy = getattr(trainer.datamodule, "on_bad_sample", None)
            prefix = "on_bad_sample=skip: " if policy == "skip" else ""
            _warn(f"{prefix}{len(new)} file(s) were left out at setup: " + _listing(new))

    def _end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        ledger = self._ledger(trainer)
        if ledger is None:
            return
        # Counted from the end of this stage's previous pass, not from this pass's start hook:
        # DataLoader workers start reading (and recording) before the epoch-start hooks run.
        skipped = ledger.records(since=self._marks.get(stage), stage=stage)
        self._marks[stage] = ledger.marks()
        setup = ledger.setup_records()
        common = {"on_step": False, "on_epoch": True, "reduce_fx": "sum", "sync_dist": trainer.world_size > 1}
        pl_module.log(f"data/skipped_samples_{stage}", float(len(skipped)), **common)
        pl_module.log("data/skipped_files_setup", float(len(setup)), **common)
        if skipped:
            if trainer.sanity_checking:
                what = "sanity check"
            elif trainer.state.fn == TrainerFn.FITTING:
                what = f"epoch {trainer.current_epoch}"
            else:
                what = "run"
            _warn(
                f"on_bad_sample=skip: {stage} {what}: skipped {len(skipped)} sample(s) from "
                f"{len({r.file for r in skipped})} bad file(s): " + _listing(skipped)
            )

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._report_setup(trainer)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._report_setup(trainer)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._report_setup(trainer)

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._report_setup(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._end(trainer, pl_module, "train")

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._end(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._end(trainer, pl_module, "test")


def _listing(records: list[SkippedSample]) -> str:
    """Each distinct file once, with its first reason (without the file name repeated)."""
    reasons: dict[str, str] = {}
    for record in records:
        reasons.setdefault(record.file, record.reason.replace(f"{record.file}: ", "", 1))
    return "; ".join(f"{file} ({reason})" for file, reason in reasons.items())


def _warn(message: str) -> None:
    log.warning(message)
    warnings.warn(message, BadSampleWarning, stacklevel=2)
