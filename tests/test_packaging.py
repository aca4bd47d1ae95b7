"""Packaging: ``__version__``, the ``event-lightning`` console command, configs by name from any folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import warnings
import zipfile
from pathlib import Path

import pytest

import event_lightning
from event_lightning.__main__ import main as console_main
from event_lightning.cli import main
from event_lightning.config_files import config_names, find_config, resolve_config_arguments
from event_lightning.data.__main__ import build_parser as data_parser

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _env(pythonpath: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(pythonpath)}


def test_version_is_the_projects():
    assert event_lightning.__version__ == PYPROJECT["project"]["version"]


def test_console_script_is_declared():
    assert PYPROJECT["project"]["scripts"] == {"event-lightning": "event_lightning.__main__:main"}


def test_config_names_are_the_files_of_config():
    assert config_names() == sorted(path.stem for path in (REPO / "config").glob("*.yaml"))
    assert find_config("quickstart") == find_config("quickstart.yaml") == str(REPO / "config" / "quickstart.yaml")
    assert find_config("no_such_config") == "no_such_config"  # left for the parser to report
    assert resolve_config_arguments(["fit", "--config=quickstart", "--config", "lif_pokerdvs"]) == [
        "fit",
        f"--config={REPO / 'config' / 'quickstart.yaml'}",
        "--config",
        str(REPO / "config" / "lif_pokerdvs.yaml"),
    ]


def test_an_existing_file_wins_over_a_config_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("quickstart").write_text("trainer: {max_epochs: 1}\n")
    assert find_config("quickstart") == "quickstart"


def test_config_by_name_from_another_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", "quickstart", "--print_config"])
    assert exit_info.value.code == 0
    assert "class_path: event_lightning.models.lif_classifier.LIFClassifier" in capsys.readouterr().out


def test_python_m_event_lightning_is_the_console_command(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "event_lightning", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(REPO),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "event-lightning data prepare|inspect" in result.stdout
    assert "usage: event-lightning [-c CONFIG] {fit,validate,test,predict}" in result.stdout


@pytest.mark.parametrize(
    ("args", "usage"),
    [
        (["data", "inspect", "--help"], "usage: event-lightning data inspect"),
        (["export", "--help"], "usage: event-lightning export [-h] --ckpt_path CKPT_PATH"),
    ],
)
def test_console_command_runs_data_and_export(args, usage, capsys):
    with pytest.raises(SystemExit) as exit_info:
        console_main(args)
    assert exit_info.value.code == 0
    assert usage in capsys.readouterr().out


def test_data_options_are_spelt_as_in_the_lightning_cli():
    parser = data_parser()
    assert parser.parse_args(["inspect", "nmnist", "--root", "d", "--max_samples", "5"]).max_samples == 5
    with pytest.warns(FutureWarning, match="--max-samples is deprecated and goes in 0.3: spell it --max_samples"):
        assert parser.parse_args(["inspect", "nmnist", "--root", "d", "--max-samples", "7"]).max_samples == 7
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parser.parse_args(["inspect", "nmnist", "--root", "d"])


def _copy_source(destination: Path) -> None:
    """What a source distribution holds; the build writes build/ and *.egg-info there, not in the checkout."""
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, destination / name)
    for folder in ("event_lightning", "config"):
        shutil.copytree(REPO / folder, destination / folder, ignore=shutil.ignore_patterns("__pycache__"))


@pytest.mark.slow
def test_wheel_ships_the_configs_and_the_console_command(tmp_path):
    """Build and install a wheel (offline, into a folder), then run its ``event-lightning`` elsewhere."""
    source = tmp_path / "source"
    source.mkdir()
    _copy_source(source)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)]
    subprocess.run(build, check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("event_lightning-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = {Path(name).stem for name in archive.namelist() if name.startswith("event_lightning/configs/")}
    assert shipped == set(config_names())
    site = tmp_path / "site"
    install = [*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=300)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = [str(site / "bin" / "event-lightning"), "fit", "--config", "quickstart", "--print_config"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=elsewhere, env=_env(site), timeout=300)
    assert result.returncode == 0, result.stderr
    assert "class_path: event_lightning.models.lif_classifier.LIFClassifier" in result.stdout
    lookup = "from event_lightning.config_files import find_config; print(find_config('quickstart'))"
    where = subprocess.run(
        [sys.executable, "-c", lookup],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=_env(site),
        timeout=300,
    )
    assert where.stdout.strip() == str(site / "event_lightning" / "configs" / "quickstart.yaml")
