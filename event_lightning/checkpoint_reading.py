"""Reading a checkpoint without letting it choose code to run.

A Lightning checkpoint names the class that wrote it (``hyper_parameters._class_path``, and
``_instantiator``); LightningCLI and ``load_from_checkpoint`` import what it names. A checkpoint
from the internet could name ``helper.X`` and get a ``helper.py`` lying next to it imported. Here
a class named by a checkpoint (or by a ``config.yaml`` that came with it) is imported only when it
lives in this package (``event_lightning.*``) or the user named it themselves (a ``--config`` they
passed, ``--model_class``); anything else is refused before the import.

:func:`read_checkpoint` loads with ``weights_only=True`` (no pickled code), memory-maps zip
checkpoints (reading the hyperparameters does not read every weight), reads legacy non-zip files
too, and turns anything unreadable into a :class:`CheckpointError` naming the file.
"""

from __future__ import annotations

import importlib
import zipfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "LIBRARY_PACKAGES",
    "PROJECT_PACKAGE",
    "CheckpointError",
    "UntrustedClassError",
    "check_class_paths_in",
    "check_trusted_class_path",
    "import_trusted_class",
    "is_project_class_path",
    "read_checkpoint",
]

PROJECT_PACKAGE = "event_lightning"
#: installed libraries a saved run config names (logger, callbacks); importing them runs no file's choice
LIBRARY_PACKAGES = ("pytorch_lightning", "lightning", "torch", "torchmetrics")


class CheckpointError(ValueError):
    """A checkpoint file that is missing, unreadable or not a Lightning checkpoint."""


class UntrustedClassError(CheckpointError):
    """A checkpoint (or a config that came with it) names a class outside the allow-list."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict at ``path``, tensors on the CPU, loaded without unpickling code.

    Zip checkpoints (``torch.save``'s format since 1.6) are memory-mapped: tensors are read only
    when touched. Legacy (non-zip) files are read whole.

    Raises:
        CheckpointError: the file is missing, is not a checkpoint torch can read with
            ``weights_only=True``, or does not hold a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        # mmap works only for the zip format; a legacy file is read whole
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as error:  # noqa: BLE001 - every way a file can fail to load is reported alike
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({type(error).__name__}: {reason[:300]}); expected a .ckpt "
            "file written by Lightning (or torch.save of a dict), loadable with torch.load(weights_only=True)"
        ) from error
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: not a Lightning checkpoint: it holds a {type(checkpoint).__name__}, not a dict")
    return checkpoint


def is_project_class_path(class_path: str) -> bool:
    """Whether ``class_path`` points into this package (importing it runs only this project's code)."""
    return class_path.startswith(f"{PROJECT_PACKAGE}.")


def check_class_paths_in(value: Any, source: str, packages: Collection[str] = (PROJECT_PACKAGE,)) -> None:
    """Raise :class:`UntrustedClassError` for any ``class_path`` (at any depth of ``value``) outside ``packages``.

    For a config that came with a checkpoint rather than from the user: LightningCLI would import
    every class path in it (model, data, logger, callbacks).
    """
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("class_path", "_class_path") and not (
                isinstance(item, str) and any(item.startswith(f"{package}.") for package in packages)
            ):
                check_trusted_class_path(item, source)  # raises, naming the class
            check_class_paths_in(item, source, packages)
    elif isinstance(value, list | tuple):
        for item in value:
            check_class_paths_in(item, source, packages)


def check_trusted_class_path(class_path: Any, source: str, trusted: Collection[str] = ()) -> str:
    """``class_path`` when importing it is safe: a project class, or one the user named (``trusted``).

    Nothing is imported here.

    Raises:
        UntrustedClassError: naming ``source`` (the file that named the class) and how to proceed.
    """
    if not isinstance(class_path, str) or not class_path:
        raise UntrustedClassError(f"{source}: names the class {class_path!r}, which is not an import path")
    if is_project_class_path(class_path) or class_path in trusted:
        return class_path
    raise UntrustedClassError(
        f"{source}: names the class {class_path!r}, which is not part of {PROJECT_PACKAGE} and was not named by "
        "you; importing it would run code chosen by the file, so it was not imported. If you trust the file and "
        "that class, name it yourself (model.class_path in a --config you pass, or --model_class)"
    )


def import_trusted_class(class_path: Any, base: type, source: str, trusted: Collection[str] = ()) -> type:
    """Import ``class_path`` after :func:`check_trusted_class_path`; it must subclass ``base``.

    Raises:
        UntrustedClassError: as :func:`check_trusted_class_path`.
        CheckpointError: the class cannot be imported or is not a ``base``.
    """
    class_path = check_trusted_class_path(class_path, source, trusted)
    module_name, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as error:
        raise CheckpointError(f"{source}: cannot import the class {class_path!r}: {error}") from error
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise CheckpointError(f"{source}: {class_path!r} is not a {base.__name__} class")
    return cls
