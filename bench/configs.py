"""A method's model and DataModule built from its config YAML in ``config/``, as the CLI builds them."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import typing
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import yaml

from event_lightning.cli import LINKED_MODEL_ARGS
from event_lightning.events.core import SensorSize

REPO_ROOT = Path(__file__).resolve().parent.parent


def load_class(class_path: str) -> type:
    """The class named ``package.module.Class``."""
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _dataclass_of(annotation: Any) -> type | None:
    """The dataclass in ``annotation`` (``X`` or ``X | None``), else None."""
    candidates = typing.get_args(annotation) or (annotation,)
    return next((c for c in candidates if dataclasses.is_dataclass(c) and isinstance(c, type)), None)


def instantiate(class_path: str, init_args: dict[str, Any]) -> Any:
    """``Class(**init_args)``, turning dict values into the dataclass the signature asks for (what
    jsonargparse does for the CLI, e.g. ``synthetic: {num_classes: 6}`` -> ``SyntheticASLConfig``)."""
    cls = load_class(class_path)
    hints = typing.get_type_hints(cls.__init__)
    args = dict(init_args)
    for name, value in args.items():
        target = _dataclass_of(hints.get(name))
        if isinstance(value, dict) and target is not None:
            args[name] = target(**value)
    return cls(**args)


def read_config(path: str | Path) -> dict[str, Any]:
    """A config YAML of ``config/`` (``model`` and ``data`` with ``class_path`` / ``init_args``)."""
    path = REPO_ROOT / path
    config = yaml.safe_load(path.read_text())
    for key in ("model", "data"):
        if not isinstance(config.get(key), dict) or "class_path" not in config[key]:
            raise ValueError(f"{path}: expected a '{key}:' section with class_path; found {config.get(key)!r}")
    return config


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied; nested dicts are merged key by key."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def build_datamodule(config: dict[str, Any], overrides: dict[str, Any]) -> pl.LightningDataModule:
    """The config's DataModule with ``overrides`` on its ``init_args``."""
    return instantiate(config["data"]["class_path"], _merge(config["data"].get("init_args", {}), overrides))


def build_model(
    config: dict[str, Any], datamodule: pl.LightningDataModule, overrides: dict[str, Any]
) -> pl.LightningModule:
    """The config's model with the CLI's links from the DataModule (``sensor_size`` as ``[W, H, P]``,
    ``num_classes``, ``n_time_steps``; only those the model's ``__init__`` accepts)."""
    class_path = config["model"]["class_path"]
    args = _merge(config["model"].get("init_args", {}), overrides)
    accepted = inspect.signature(load_class(class_path).__init__).parameters
    for name in LINKED_MODEL_ARGS:
        value = getattr(datamodule, name, None)
        if name in accepted and value is not None:
            args[name] = SensorSize.coerce(value).as_list() if name == "sensor_size" else value
    return instantiate(class_path, args)
