"""Checks the CLI makes on a parsed config before anything is written; each raises ValueError naming the key.

The CLI (:mod:`event_lightning.cli`) shows them as usage errors (exit status 2).
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from event_lightning.checkpoint_reading import import_trusted_class, is_project_class_path
from event_lightning.events.core import SensorSize
from event_lightning.resume_rules import FIXED, HyperparameterChange, hyperparameter_changes

__all__ = [
    "check_checkpoint_matches_data",
    "check_float32_range",
    "check_linked_values",
    "check_resume_changes",
    "sensor_size_as_list",
]

FLOAT32_MAX = float(torch.finfo(torch.float32).max)


def sensor_size_as_list(sensor_size: Any) -> list[int] | None:
    """``[W, H, P]`` of any sensor-size form (what the CLI links into a model), None for None."""
    return None if sensor_size is None else SensorSize.coerce(sensor_size).as_list()


def check_float32_range(init_args: dict[str, Any], prefix: str) -> None:
    """Raise ValueError naming the key when a number is NaN, infinite or beyond float32 (models compute in it)."""
    for key, value in init_args.items():
        numbers = value if isinstance(value, list | tuple) else [value]
        for number in numbers:
            if isinstance(number, float) and not (math.isfinite(number) and abs(number) <= FLOAT32_MAX):
                raise ValueError(
                    f"{prefix}.{key} is {value}: the models compute in float32, whose largest finite value is "
                    f"{FLOAT32_MAX:.3g}; give a finite number in that range"
                )


def check_linked_values(explicit: dict[str, Any], model: pl.LightningModule, datamodule: Any) -> None:
    """Raise ValueError when the config set a linked model argument the DataModule contradicts.

    The link (data -> model) replaces the value, so an explicit ``model.init_args.sensor_size
    [10, 10, 2]`` on 34x34x2 data would be dropped silently. A value equal to the model's own
    default is taken as not given.
    """
    if datamodule is None or not explicit:
        return
    parameters = inspect.signature(type(model).__init__).parameters
    for name, value in explicit.items():
        found = getattr(datamodule, name, None)
        if name == "sensor_size":
            found = sensor_size_as_list(found)
        default = parameters[name].default if name in parameters else inspect.Parameter.empty
        if found is None or value == default or _as_plain_list(value) == found:
            continue
        raise ValueError(
            f"model.init_args.{name} is {value}, but the DataModule ({type(datamodule).__name__}) gives "
            f"{name} {found}; the CLI passes data.{name} to the model: drop model.init_args.{name} from the "
            "config and the command line, or change the data"
        )


def _as_plain_list(value: Any) -> Any:
    return list(value) if isinstance(value, list | tuple) else value


def check_resume_changes(
    checkpoint: Path, saved: dict[str, Any], model: pl.LightningModule, class_path: str
) -> list[HyperparameterChange]:
    """The model hyperparameters the resumed run changes; ValueError when one of them may not change.

    Refused: another model class than the checkpoint's, and any :data:`~event_lightning.resume_rules.FIXED`
    key (shapes, dynamics, initialisation).
    """
    saved_class = saved.get("_class_path")
    if saved_class and saved_class != class_path:
        same = is_project_class_path(str(saved_class)) and import_trusted_class(
            saved_class, pl.LightningModule, f"checkpoint {checkpoint}"
        ) is type(model)
        if not same:
            raise ValueError(
                f"--resume {checkpoint}: the checkpoint was written by {saved_class}, the config names {class_path}; "
                "resume with the config of that run (omit --config to reuse its config.yaml)"
            )
    changes = hyperparameter_changes(type(model), saved, dict(getattr(model, "hparams", {}) or {}))
    refused = [change for change in changes if change.kind == FIXED]
    if refused:
        raise ValueError(
            f"--resume {checkpoint}: cannot change {'; '.join(c.describe() for c in refused)} on resume: "
            "these set the network's shapes, dynamics, meaning or initialisation, which the checkpoint's weights "
            "were trained with. Drop these overrides to resume, or start a new run (fit without --resume) to "
            "change them. What a resume may change: docs/cli.md, 'Resuming a run'"
        )
    return changes


def check_checkpoint_matches_data(checkpoint: Path, saved: dict[str, Any], datamodule: Any) -> None:
    """Raise ValueError when the data's classes or sensor differ from those the checkpoint was trained on.

    The CLI links ``data.num_classes`` and ``data.sensor_size`` into the model, so a checkpoint
    trained on other data would otherwise fail deep inside ``load_state_dict`` with a tensor-shape
    message that names neither setting.
    """
    if datamodule is None:
        return
    found = {"num_classes": getattr(datamodule, "num_classes", None)}
    found["sensor_size"] = sensor_size_as_list(getattr(datamodule, "sensor_size", None))
    for key, value in found.items():
        trained = saved.get(key)
        if value is None or trained is None:
            continue
        trained = _as_plain_list(trained)
        if trained != value:
            raise ValueError(
                f"data.{key} is {value}, but the checkpoint {checkpoint} was trained with model.{key} "
                f"{trained}; evaluate it on data with the same {key}, or train a new model"
            )
