"""The command line: ``python train_script.py {fit,validate,test,predict} --config config/X.yaml``.

A LightningCLI in subclass mode (configs choose the model and data by ``class_path``) with:

* ``--resume PATH|last``: continue a run from a checkpoint in the run's own TensorBoard version
  directory (same curves, global step and epoch continue), with no logger version to set by hand
  and without the saved-config overwrite guard stopping the run. ``last`` is the newest
  ``last.ckpt`` under the logger's ``save_dir/name``. Values in the config and on the command line
  win over the hyperparameters stored in the checkpoint.
* links from the DataModule to the model: ``sensor_size`` (as ``[W, H, P]``), ``num_classes``,
  ``n_time_steps``. A model that has no such argument is not given it.
* defaults: TensorBoardLogger under ``runs/``; RunCheckpoint (``--checkpoint.*``, a
  ModelCheckpoint with atomic writes whose ``last.ckpt`` follows every epoch, every N steps and
  SIGTERM / Ctrl-C), NonFiniteLossGuard (``--nonfinite_guard.*``), RNGStateCheckpoint
  (``--rng_state.*``: random streams saved and restored for exact resumes), BadSampleReporter
  (``--bad_samples.*``: per-epoch totals of files skipped under ``data.on_bad_sample: skip``) and
  LearningRateMonitor (``--lr_monitor.*``) always present; Lightning's progress bar; ``seed_everything: 42``.
* SIGTERM or a first Ctrl-C: ``fit`` stops at the next batch boundary, writes ``last.ckpt`` and
  exits with status 143 (128 + SIGTERM) or 130 (128 + SIGINT), so a scheduler sees that the run
  did not finish.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from jsonargparse import Namespace, lazy_instance
from pytorch_lightning.callbacks import LearningRateMonitor
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities.exceptions import SIGTERMException

from event_lightning.callbacks.bad_samples import BadSampleReporter
from event_lightning.callbacks.checkpoint import RunCheckpoint, requested_stop_signal
from event_lightning.callbacks.guards import NonFiniteLossGuard
from event_lightning.callbacks.predictions import PredictionFileWriter
from event_lightning.callbacks.rng_state import RNGStateCheckpoint
from event_lightning.events.core import SensorSize

RUNS_DIR = "runs"
LINKED_MODEL_ARGS = ("sensor_size", "num_classes", "n_time_steps")
DEFAULT_SEED = 42


def _sensor_size_as_list(sensor_size: Any) -> list[int] | None:
    return None if sensor_size is None else SensorSize.coerce(sensor_size).as_list()


class RunConfigSaver(SaveConfigCallback):
    """Saves ``config.yaml`` for fit and ``config_<stage>.yaml`` for the other subcommands.

    An evaluation that logs into a training run's directory then never replaces the training
    config; a resumed fit replaces it (the CLI sets ``overwrite`` for resumes only).
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        stage_name = str(getattr(stage, "value", stage))  # Lightning passes a TrainerFn enum for predict
        if stage_name != "fit":
            self.config_filename = f"config_{stage_name}.yaml"
        super().setup(trainer, pl_module, stage)


def find_last_checkpoint(run_root: Path) -> Path:
    """The newest ``last.ckpt`` (by modification time) anywhere below ``run_root``."""
    candidates = sorted(run_root.glob("**/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise FileNotFoundError(
            f"--resume last: no last.ckpt under {run_root}; train first (fit) or pass a checkpoint path"
        )
    return candidates[-1]


def _logger_root(trainer_cfg: Namespace) -> tuple[Namespace | None, Path]:
    """The logger's config node (None without a TensorBoard-style logger) and the run root."""
    logger = trainer_cfg.get("logger")
    if isinstance(logger, list):
        logger = logger[0] if logger else None
    if isinstance(logger, Namespace) and "init_args" in logger and "save_dir" in logger.init_args:
        args = logger.init_args
        return logger, Path(args.save_dir) / str(args.get("name") or "")
    return None, Path(trainer_cfg.get("default_root_dir") or ".")


class EventLightningCLI(LightningCLI):
    """LightningCLI with ``--resume`` and the event_lightning defaults."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("save_config_callback", RunConfigSaver)
        kwargs.setdefault("seed_everything_default", DEFAULT_SEED)
        kwargs.setdefault("trainer_defaults", default_trainer_settings())
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # Always-present callbacks, configurable as --checkpoint.* and --lr_monitor.*
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True})
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.set_defaults({"lr_monitor.logging_interval": "epoch"})
        parser.add_lightning_class_args(NonFiniteLossGuard, "nonfinite_guard")
        # the torch / numpy / Python random streams go into every checkpoint and back on --resume
        parser.add_lightning_class_args(RNGStateCheckpoint, "rng_state")
        # per-epoch totals of files skipped under data.on_bad_sample: skip
        parser.add_lightning_class_args(BadSampleReporter, "bad_samples")
        # predict writes <log_dir>/predictions.npz unless --predictions.path says otherwise
        parser.add_lightning_class_args(PredictionFileWriter, "predictions")
        parser.add_argument(
            "--resume",
            type=str | None,
            default=None,
            help="Continue a run: a checkpoint path, or 'last' for the newest last.ckpt of the run "
            "named by the logger's save_dir/name. Logs go on in the checkpoint's own version directory.",
        )
        parser.link_arguments(
            "data.sensor_size",
            "model.init_args.sensor_size",
            compute_fn=_sensor_size_as_list,
            apply_on="instantiate",
        )
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.n_time_steps", "model.init_args.n_time_steps", apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand]
        resume = config.get("resume")
        if not resume:
            return
        logger, run_root = _logger_root(config.trainer)
        checkpoint = find_last_checkpoint(run_root) if resume == "last" else Path(resume)
        if not checkpoint.is_file():
            raise FileNotFoundError(f"--resume {resume}: no checkpoint file at {checkpoint}")
        if config.get("ckpt_path") not in (None, str(checkpoint)):
            raise ValueError("give either --resume or --ckpt_path, not both")
        config.ckpt_path = str(checkpoint)
        # ModelCheckpoint writes to <save_dir>/<name>/<version>/checkpoints: point the logger there.
        if logger is not None and checkpoint.parent.name == "checkpoints":
            version_dir = checkpoint.parent.parent
            logger.init_args.save_dir = str(version_dir.parent.parent)
            logger.init_args.name = version_dir.parent.name
            logger.init_args.version = version_dir.name
        self.save_config_kwargs["overwrite"] = True

    def _dump_config(self) -> None:
        # The dump becomes the model's saved hyperparameters; see drop_unaccepted_init_args.
        super()._dump_config()
        drop_unaccepted_init_args(self.config_dump)

    def instantiate_classes(self) -> None:
        # A constructor that rejects a config value raises ValueError naming the key; show it as a
        # usage error (exit code 2) like jsonargparse's own, not as a traceback from deep inside.
        try:
            super().instantiate_classes()
            ckpt_path = self.config[self.subcommand].get("ckpt_path") if self.subcommand else None
            if ckpt_path and ckpt_path not in ("last", "best", "hpc", "registry"):
                check_checkpoint_matches_data(Path(ckpt_path), self.datamodule)
        except ValueError as error:
            if os.environ.get("JSONARGPARSE_DEBUG"):
                raise
            self.parser.error(f"invalid configuration: {error}\n(set JSONARGPARSE_DEBUG=1 for the traceback)")


def check_checkpoint_matches_data(checkpoint: Path, datamodule: pl.LightningDataModule | None) -> None:
    """Raise ValueError when the data's classes or sensor differ from those the checkpoint was trained on.

    The CLI links ``data.num_classes`` and ``data.sensor_size`` into the model, so a checkpoint
    trained on other data would otherwise fail deep inside ``load_state_dict`` with a tensor-shape
    message that names neither setting.
    """
    if datamodule is None or not checkpoint.is_file():
        return  # Lightning reports a missing checkpoint itself
    try:
        # mmap: only the hyperparameters are read, not every weight
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True).get("hyper_parameters", {})
    except Exception as error:  # noqa: BLE001 - any unreadable file is reported the same way
        raise ValueError(f"ckpt_path: cannot read checkpoint {checkpoint}: {error}") from error
    found = {"num_classes": getattr(datamodule, "num_classes", None)}
    found["sensor_size"] = _sensor_size_as_list(getattr(datamodule, "sensor_size", None))
    for key, value in found.items():
        trained = saved.get(key)
        if value is None or trained is None:
            continue
        trained = list(trained) if isinstance(trained, list | tuple) else trained
        if trained != value:
            raise ValueError(
                f"data.{key} is {value}, but the checkpoint {checkpoint} was trained with model.{key} "
                f"{trained}; evaluate it on data with the same {key}, or train a new model"
            )


def drop_unaccepted_init_args(config_dump: dict[str, Any]) -> None:
    """Remove link targets the chosen model does not accept from a config dump, in place.

    A link such as ``data.n_time_steps -> model.init_args.n_time_steps`` is written into the dump
    (which LightningCLI saves as the checkpoint's hyperparameters) even when the model has no such
    argument; reloading that checkpoint with ``--ckpt_path`` would then fail to validate.
    """
    model = config_dump.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("init_args"), dict) or "class_path" not in model:
        return
    try:
        module, _, name = model["class_path"].rpartition(".")
        parameters = inspect.signature(getattr(importlib.import_module(module), name).__init__).parameters
    except (ImportError, AttributeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    for name in LINKED_MODEL_ARGS:
        if name not in parameters:
            model["init_args"].pop(name, None)


def default_trainer_settings() -> dict[str, Any]:
    """Trainer defaults; any of them can be replaced from a config or the command line."""
    # A lazy instance is created after seeding and parsing and prints as class_path/init_args.
    # Checkpointing and LR monitoring are parser groups (see add_arguments_to_parser); the progress
    # bar is Lightning's own default (trainer.enable_progress_bar).
    return {
        "logger": lazy_instance(TensorBoardLogger, save_dir=RUNS_DIR, name="default"),
    }


def _inject_saved_config(argv: list[str]) -> list[str]:
    """``fit --resume PATH`` with no ``--config``: reuse the run's saved ``config.yaml``."""
    if "--config" in argv or any(a.startswith("--config=") for a in argv) or "--resume" not in argv:
        return argv
    index = argv.index("--resume")
    if index + 1 >= len(argv) or argv[index + 1] == "last":
        return argv
    saved = Path(argv[index + 1]).parent.parent / "config.yaml"
    if not saved.is_file():
        return argv
    return [argv[0], "--config", str(saved), *argv[1:]]


def main(args: list[str] | None = None) -> EventLightningCLI:
    """Entry point of ``train_script.py``; ``args`` defaults to ``sys.argv[1:]``.

    Raises ``SystemExit(143)`` when SIGTERM (``130`` when Ctrl-C) stopped ``fit`` after
    ``last.ckpt`` was written.
    """
    try:
        if args is None:  # LightningCLI warns when given both args and a command line
            sys.argv[1:] = _inject_saved_config(sys.argv[1:])
            return EventLightningCLI(pl.LightningModule, pl.LightningDataModule)
        return EventLightningCLI(pl.LightningModule, pl.LightningDataModule, args=_inject_saved_config(list(args)))
    except SIGTERMException as interrupted:
        # Lightning's SIGTERMException exits with status 0, which reads as "finished" to a scheduler.
        raise SystemExit(128 + requested_stop_signal()) from interrupted
