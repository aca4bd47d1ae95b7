"""The configs that come with the package, by name: ``--config quickstart`` from any working directory.

``config/*.yaml`` of the repository is the one copy. A wheel carries it as ``event_lightning/configs/``
(setup.py maps the folder); a checkout or an editable install reads ``config/`` beside the package.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# installed from a wheel, then a checkout / editable install
CONFIG_DIRS = (PACKAGE_DIR / "configs", PACKAGE_DIR.parent / "config")
CONFIG_SUFFIX = ".yaml"


def packaged_config_dir() -> Path | None:
    """The folder of the package's configs, None when neither place has one."""
    return next((folder for folder in CONFIG_DIRS if folder.is_dir()), None)


def config_names() -> list[str]:
    """The names ``--config`` accepts besides file paths (``quickstart``, ``lif_pokerdvs``, ...)."""
    folder = packaged_config_dir()
    return sorted(path.stem for path in folder.glob(f"*{CONFIG_SUFFIX}")) if folder else []


def find_config(value: str) -> str:
    """``value`` itself when it is an existing file or names none of the package's configs, else
    the path of the packaged config it names (``quickstart`` or ``quickstart.yaml``)."""
    if Path(value).exists() or "/" in value or "\\" in value:
        return value
    folder = packaged_config_dir()
    name = value if value.endswith(CONFIG_SUFFIX) else f"{value}{CONFIG_SUFFIX}"
    if folder is None or not (folder / name).is_file():
        return value
    return str(folder / name)


def resolve_config_arguments(argv: list[str]) -> list[str]:
    """``argv`` with every ``--config NAME`` / ``--config=NAME`` of a packaged config made a path."""
    resolved = list(argv)
    for index, word in enumerate(resolved):
        if word.startswith("--config="):
            resolved[index] = f"--config={find_config(word.split('=', 1)[1])}"
        elif word == "--config" and index + 1 < len(resolved):
            resolved[index + 1] = find_config(resolved[index + 1])
    return resolved
