"""Running a :class:`~bench.config_cases.ConfigCase` through the real entrypoint for a few steps.

:func:`run_case` fits a case in this process (``event_lightning.cli.main``, what
``train_script.py`` calls) with :class:`~bench.step_clock.StepClock` attached and returns its
report; :func:`ddp_command` is the command line of a 2-process CPU DDP run of a case, with
:class:`~event_lightning.callbacks.rank_consistency.RankConsistencyCheck` writing every rank's
weight fingerprints. The cross-method tests (``tests/gpu``) and the GPU preflight use both.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config_cases import REPO_ROOT, ConfigCase, write_case_config

HOST_SYNC_GUARD = "event_lightning.callbacks.host_sync.HostSyncGuard"
RANK_CONSISTENCY = "event_lightning.callbacks.rank_consistency.RankConsistencyCheck"


@dataclass(frozen=True)
class RunSettings:
    """How a case runs: steps, device, precision, compilation, batch size, extra checks.

    Attributes:
        train_steps, val_steps: training / validation batches (one epoch, no sanity check).
        accelerator: ``cpu`` or ``gpu``.
        precision: Lightning's ``trainer.precision``.
        compile: ``model.init_args.compile``.
        batch_size: replaces the config's batch size (None: the config's).
        host_sync_guard: add ``HostSyncGuard`` (checks the first two steps of each kind).
        seed: ``seed_everything``, so two runs of a case see the same weights and batches.
        loader_batches: batches of the train-loader pass :class:`~bench.step_clock.StepClock`
            times after fitting (0: none).
    """

    train_steps: int = 1
    val_steps: int = 1
    accelerator: str = "cpu"
    precision: str = "32-true"
    compile: bool = False
    batch_size: int | None = None
    host_sync_guard: bool = False
    seed: int = 0
    loader_batches: int = 0


def _trainer_args(settings: RunSettings) -> list[str]:
    return [
        "--seed_everything", str(settings.seed),
        "--trainer.max_epochs", "1",
        "--trainer.max_steps", "-1",
        "--trainer.limit_train_batches", str(settings.train_steps),
        "--trainer.limit_val_batches", str(settings.val_steps),
        "--trainer.check_val_every_n_epoch", "1",
        "--trainer.num_sanity_val_steps", "0",
        "--trainer.log_every_n_steps", "1",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        "--trainer.precision", settings.precision,
        "--model.init_args.compile", "true" if settings.compile else "false",
    ]  # fmt: skip


def run_case(case: ConfigCase, workdir: Path, settings: RunSettings, tag: str = "") -> dict[str, Any]:
    """Fit ``case`` for ``settings.train_steps`` + ``settings.val_steps`` steps in this process and
    return the :class:`~bench.step_clock.StepClock` report (``config`` added). Exceptions of the
    run propagate."""
    from event_lightning.cli import main

    config = write_case_config(case, workdir, settings.batch_size)
    report = workdir / "reports" / f"{case.name}{tag}.json"
    report.unlink(missing_ok=True)
    args = [
        "fit",
        "--config", str(config),
        *_trainer_args(settings),
        "--trainer.accelerator", settings.accelerator,
        "--trainer.devices", "1",
        "--trainer.callbacks+=bench.step_clock.StepClock",
        "--trainer.callbacks.report", str(report),
        "--trainer.callbacks.loader_batches", str(settings.loader_batches),
    ]  # fmt: skip
    if settings.host_sync_guard:
        args.append(f"--trainer.callbacks+={HOST_SYNC_GUARD}")
    main(args)
    result = json.loads(report.read_text())
    result["config"] = case.config
    return result


def ddp_command(case: ConfigCase, workdir: Path, settings: RunSettings, report_dir: Path) -> list[str]:
    """``python train_script.py fit`` of ``case`` on 2 CPU processes (gloo) with every rank's weight
    fingerprints written to ``report_dir/rank<R>.json`` after the first batch and at the end."""
    config = write_case_config(case, workdir, settings.batch_size)
    return [
        sys.executable,
        str(REPO_ROOT / "train_script.py"),
        "fit",
        "--config", str(config),
        *_trainer_args(settings),
        "--trainer.accelerator", "cpu",
        "--trainer.devices", "2",
        "--trainer.strategy", "ddp",
        f"--trainer.callbacks+={RANK_CONSISTENCY}",
        "--trainer.callbacks.report_dir", str(report_dir),
    ]  # fmt: skip
