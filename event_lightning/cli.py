"""The command line: ``python train_script.py {fit,validate,test,predict} --config config/X.yaml``.

``event-lightning fit --config quickstart`` is the same command installed as a console script
(:mod:`event_lightning.__main__`); ``--config NAME`` finds a config that comes with the package.

A LightningCLI in subclass mode (configs choose the model and data by ``class_path``) with:

* ``--resume PATH|last`` (``fit --ckpt_path PATH`` is the same): continue a run from a checkpoint
  in the run's own TensorBoard version directory (same curves, global step and epoch continue),
  with no logger version to set by hand and without the saved-config overwrite guard stopping the
  run. ``last`` is the newest ``last.ckpt`` under the logger's ``save_dir/name``. Values in the
  config and on the command line win over the hyperparameters stored in the checkpoint: changed
  optimiser and training keys are applied and announced, keys that fix shapes, dynamics or
  initialisation are refused before anything is written (:mod:`event_lightning.resume_rules`).
* checkpoints and the config saved beside them never choose a class to import outside this
  package (:mod:`event_lightning.checkpoint_reading`).
* usage errors (exit 2, naming the key or file) for whatever cannot work: a constructor's or the
  Trainer's refusal, numbers beyond float32, a linked model argument the data contradicts, an
  unreadable checkpoint, nothing to resume; a run that fails as it starts removes the empty
  version folder it created.
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
import pkgutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import yaml
from jsonargparse import Namespace, lazy_instance
from pytorch_lightning.callbacks import LearningRateMonitor
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities.exceptions import MisconfigurationException, SIGTERMException
from pytorch_lightning.utilities.rank_zero import rank_zero_info

from event_lightning.callbacks.bad_samples import BadSampleReporter
from event_lightning.callbacks.checkpoint import RunCheckpoint, requested_stop_signal
from event_lightning.callbacks.guards import NonFiniteLossGuard
from event_lightning.callbacks.predictions import PredictionFileWriter
from event_lightning.callbacks.resume_overrides import ResumedOptimiserSettings
from event_lightning.callbacks.rng_state import RNGStateCheckpoint
from event_lightning.checkpoint_reading import (
    LIBRARY_PACKAGES,
    PROJECT_PACKAGE,
    CheckpointError,
    check_class_paths_in,
    check_trusted_class_path,
    read_checkpoint,
)
from event_lightning.config_files import resolve_config_arguments
from event_lightning.console import quiet_known_noise
from event_lightning.data.loading.missing_data import DatasetNotFoundError
from event_lightning.resume_rules import OPTIMISER
from event_lightning.run_checks import (
    check_checkpoint_matches_data,
    check_float32_range,
    check_linked_values,
    check_resume_changes,
    sensor_size_as_list,
)
from event_lightning.run_folders import find_last_checkpoint, remove_if_unused
from event_lightning.trainer import Trainer

RUNS_DIR = "runs"
LINKED_MODEL_ARGS = ("sensor_size", "num_classes", "n_time_steps")
DEFAULT_SEED = 42
# ckpt_path values Lightning resolves itself rather than reading a file
LIGHTNING_CHECKPOINT_ALIASES = ("last", "best", "hpc", "registry")
# Packages whose LightningModules and LightningDataModules may be named by their class name alone
CLASS_PACKAGES = ("event_lightning.models", "event_lightning.data.datasets")


def import_project_classes() -> None:
    """Import every module of :data:`CLASS_PACKAGES`.

    jsonargparse resolves a name without dots (``--model LIFClassifier``, ``--data.help
    NMNISTFramesDataModule``, ``class_path: LIFClassifier``) among the subclasses of the base class
    that are already imported, so they must be imported before parsing. A run imports its own
    model and data modules anyway; this adds about 0.4 s to a bare ``--help`` (the dataset modules
    import h5py).
    """
    for package_name in CLASS_PACKAGES:
        package = importlib.import_module(package_name)
        for module in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            importlib.import_module(module.name)


class RunConfigSaver(SaveConfigCallback):
    """Saves ``config.yaml`` for fit and ``config_<stage>.yaml`` for the other subcommands.

    An evaluation that logs into a training run's directory then never replaces the training
    config; a resumed fit replaces it (the CLI sets ``overwrite`` for resumes only). A fit's
    ``config.yaml`` holds no ``resume`` / ``ckpt_path``: it describes the run, so it can start a new
    run (``--config``) or continue this one (``--resume``) without pointing at an old checkpoint.
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        stage_name = str(getattr(stage, "value", stage))  # Lightning passes a TrainerFn enum for predict
        if stage_name != "fit":
            self.config_filename = f"config_{stage_name}.yaml"
        elif self.config.get("resume") or self.config.get("ckpt_path"):
            self.config = self.config.clone()
            self.config.resume = self.config.ckpt_path = None
        super().setup(trainer, pl_module, stage)


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
    """LightningCLI with ``--resume``, the event_lightning defaults, and usage errors for what cannot work."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("save_config_callback", RunConfigSaver)
        kwargs.setdefault("seed_everything_default", DEFAULT_SEED)
        kwargs.setdefault("trainer_defaults", default_trainer_settings())
        kwargs.setdefault("trainer_class", Trainer)
        self._checkpoint_hparams: dict[str, Any] | None = None  # of --ckpt_path / --resume
        self._explicit_links: dict[str, Any] = {}  # link targets the config or command line set
        self._versions_before: set[str] | None = None  # the logger's version folders before the run
        import_project_classes()
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
            help="Continue a run (fit only): a checkpoint path, or 'last' for the newest last.ckpt of the run "
            "named by the logger's save_dir/name. Logs go on in the checkpoint's own version directory.",
        )
        parser.link_arguments(
            "data.sensor_size",
            "model.init_args.sensor_size",
            compute_fn=sensor_size_as_list,
            apply_on="instantiate",
        )
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.n_time_steps", "model.init_args.n_time_steps", apply_on="instantiate")

    @contextmanager
    def _usage_errors(self) -> Iterator[None]:
        """A ValueError (or Lightning's MisconfigurationException) inside becomes a usage error, exit 2."""
        try:
            yield
        except (ValueError, MisconfigurationException) as error:
            self._usage_error(error, f"invalid configuration: {error}")

    def _usage_error(self, error: BaseException, message: str) -> None:
        """Exit with status 2 and ``message`` after the usage, without a traceback (``error`` is raised
        instead when JSONARGPARSE_DEBUG is set)."""
        if os.environ.get("JSONARGPARSE_DEBUG"):
            raise error
        self.parser.error(f"{message}\n(set JSONARGPARSE_DEBUG=1 for the traceback)")

    def _parse_ckpt_path(self) -> None:
        # Replaces LightningCLI's: that one imports whatever class the checkpoint names, and for
        # fit lets the checkpoint's hyperparameters silently override the command line.
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        config = self.config[subcommand]
        model = config.get("model")
        init_args = model.get("init_args") if isinstance(model, Namespace) else None
        if isinstance(init_args, Namespace):
            self._explicit_links = {k: init_args.get(k) for k in LINKED_MODEL_ARGS if init_args.get(k) is not None}
        ckpt_path = config.get("ckpt_path")
        with self._usage_errors():
            if config.get("resume") and subcommand != "fit":
                raise ValueError(f"--resume continues training (fit); {subcommand} a checkpoint with --ckpt_path")
            if subcommand == "fit" and ckpt_path:
                if config.get("resume") and not _same_file(config.resume, ckpt_path):
                    raise ValueError(
                        f"give either --resume ({config.resume}) or --ckpt_path ({ckpt_path}), not both: "
                        "fit --ckpt_path PATH is the same as --resume PATH"
                    )
                config.resume, config.ckpt_path = ckpt_path, None  # one resume path, one set of rules
                return
            if not ckpt_path or ckpt_path in LIGHTNING_CHECKPOINT_ALIASES:
                return
            hparams = dict(read_checkpoint(ckpt_path).get("hyper_parameters") or {})
            self._checkpoint_hparams = dict(hparams)
            hparams.pop("_instantiator", None)  # never taken from a file
            source = f"--ckpt_path {ckpt_path} (hyper_parameters)"
            check_class_paths_in({k: v for k, v in hparams.items() if k != "_class_path"}, source)  # nested ones
            if "_class_path" in hparams:
                # evaluation rebuilds the model the checkpoint names: only a project class or the config's own
                trusted = [model.get("class_path")] if isinstance(model, Namespace) else []
                hparams = {"class_path": check_trusted_class_path(hparams.pop("_class_path"), source, trusted),
                           "dict_kwargs": hparams}  # fmt: skip
        if not hparams:
            return
        try:
            self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)
        except SystemExit:
            sys.stderr.write(f"Parsing of the hyperparameters of --ckpt_path {ckpt_path} failed\n")
            raise

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand]
        with self._usage_errors():
            model = config.get("model")
            if isinstance(model, Namespace) and isinstance(model.get("init_args"), Namespace):
                check_float32_range(model.init_args.as_dict(), "model.init_args")
            if config.get("resume"):
                self._point_at_resumed_run(config)

    def _point_at_resumed_run(self, config: Namespace) -> None:
        resume = config.resume
        logger, run_root = _logger_root(config.trainer)
        if resume == "last":
            try:
                checkpoint = find_last_checkpoint(run_root)
            except FileNotFoundError as error:
                raise ValueError(str(error)) from error
        else:
            checkpoint = Path(resume)
        self._checkpoint_hparams = dict(read_checkpoint(checkpoint).get("hyper_parameters") or {})
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
        # Everything a constructor, the links or a resume rule rejects stops here, before fit
        # writes config.yaml or any log.
        with self._usage_errors():
            super().instantiate_classes()
            check_linked_values(self._explicit_links, self.model, self.datamodule)
            config = self.config[self.subcommand]
            if self._checkpoint_hparams is not None:
                check_checkpoint_matches_data(Path(config.ckpt_path), self._checkpoint_hparams, self.datamodule)
            if config.get("resume") and self._checkpoint_hparams:
                self._apply_resume_rules(Path(config.ckpt_path), config.model.class_path)
        root = getattr(self.trainer.logger, "root_dir", None)
        self._versions_before = {p.name for p in Path(root).iterdir()} if root and Path(root).is_dir() else set()

    def _apply_resume_rules(self, checkpoint: Path, class_path: str) -> None:
        changes = check_resume_changes(checkpoint, self._checkpoint_hparams, self.model, class_path)
        for change in changes:
            where = "the restored optimisers use it" if change.kind == OPTIMISER else "the resumed model uses it"
            rank_zero_info(f"--resume: {change.describe()}: changed, {where}")
        if any(change.kind == OPTIMISER for change in changes):
            self.trainer.callbacks.append(ResumedOptimiserSettings())

    def _run_subcommand(self, subcommand: str) -> None:
        try:
            super()._run_subcommand(subcommand)
        except DatasetNotFoundError as error:
            # raised by the DataModule's prepare_data / setup, inside the Trainer: a setting to fix
            # (data.root, data.synthetic), so a usage error naming what is missing, not a traceback
            self._remove_failed_start_folder()
            self._usage_error(error, str(error))
        except BaseException:
            self._remove_failed_start_folder()
            raise

    def _remove_failed_start_folder(self) -> None:
        """After a failure, delete the version folder this run created if it holds nothing of value."""
        logger = self.trainer.logger
        if self._versions_before is None or logger is None or getattr(logger, "_version", None) is None:
            return  # the logger never chose its folder
        log_dir = Path(logger.log_dir)
        if self.trainer.is_global_zero and log_dir.name not in self._versions_before:
            remove_if_unused(log_dir)


def _same_file(a: str, b: str) -> bool:
    return Path(a).is_file() and Path(b).is_file() and os.path.samefile(a, b)


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
    """``fit --resume PATH`` with no ``--config``: reuse the run's saved ``config.yaml``.

    That file came with the checkpoint, not from the user, so every class it names must belong to
    this package or the libraries it builds on (:func:`~event_lightning.checkpoint_reading.check_class_paths_in`).

    Raises:
        UntrustedClassError: the saved config names another class (pass it with ``--config`` if trusted).
    """
    if "--config" in argv or any(a.startswith("--config=") for a in argv) or "--resume" not in argv:
        return argv
    index = argv.index("--resume")
    if index + 1 >= len(argv) or argv[index + 1] == "last":
        return argv
    saved = Path(argv[index + 1]).parent.parent / "config.yaml"
    if not saved.is_file():
        return argv
    try:
        content = yaml.safe_load(saved.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise CheckpointError(f"{saved}: the resumed run's config cannot be read: {error}") from error
    packages = (PROJECT_PACKAGE, *LIBRARY_PACKAGES)
    check_class_paths_in(content, f"{saved} (the config saved with the checkpoint)", packages)
    return [argv[0], "--config", str(saved), *argv[1:]]


def main(args: list[str] | None = None) -> EventLightningCLI:
    """Entry point of ``train_script.py`` and ``event-lightning``; ``args`` defaults to ``sys.argv[1:]``.

    ``--config NAME`` (``quickstart``, ``lif_pokerdvs``, ...) is a config that comes with the package
    (:mod:`event_lightning.config_files`), found from any working directory; a file path works as usual.

    Raises ``SystemExit(143)`` when SIGTERM (``130`` when Ctrl-C) stopped ``fit`` after
    ``last.ckpt`` was written.
    """
    quiet_known_noise()
    try:
        argv = _inject_saved_config(resolve_config_arguments(sys.argv[1:] if args is None else list(args)))
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from error
    try:
        if args is None:  # LightningCLI warns when given both args and a command line
            sys.argv[1:] = argv
            return EventLightningCLI(pl.LightningModule, pl.LightningDataModule)
        return EventLightningCLI(pl.LightningModule, pl.LightningDataModule, args=argv)
    except SIGTERMException as interrupted:
        # Lightning's SIGTERMException exits with status 0, which reads as "finished" to a scheduler.
        raise SystemExit(128 + requested_stop_signal()) from interrupted
