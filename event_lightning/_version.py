"""The package version: the installed distribution's metadata, else the source tree's pyproject.toml."""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

DISTRIBUTION = "event_lightning"
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def package_version() -> str:
    """``event_lightning.__version__``.

    A checkout used without installing it (``PYTHONPATH=.``) has no metadata; its
    ``pyproject.toml`` says the version then.
    """
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        if not PYPROJECT.is_file():
            raise
        return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["version"]
