"""A checkpoint (or the config.yaml that came with it) never chooses a module to import.

Before: a checkpoint whose ``hyper_parameters._class_path`` was ``helper.X`` made
``python -m event_lightning.export`` (run in that folder) import and run ``helper.py``, and
``train_script.py validate --ckpt_path`` imported what it named too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from event_lightning.cli import main

# Importing this module leaves a file behind: the proof that the checkpoint ran code.
HELPER = """
from pathlib import Path
Path(__file__).with_name("IMPORTED").write_text("helper.py ran")
import pytorch_lightning as pl
class X(pl.LightningModule):
    def __init__(self, **kwargs):
        super().__init__()
"""


def _planted(folder: Path, hparams: dict | None = None) -> Path:
    """A folder holding helper.py and a checkpoint that names ``helper.X``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "helper.py").write_text(HELPER)
    checkpoint = folder / "last.ckpt"
    torch.save(
        {"state_dict": {}, "hyper_parameters": {"_class_path": "helper.X", **(hparams or {})}, "global_step": 0},
        checkpoint,
    )
    return checkpoint


def _usage_error(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_export_does_not_import_the_class_a_checkpoint_names(tmp_path):
    checkpoint = _planted(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run(
        [sys.executable, "-m", "event_lightning.export", "--ckpt_path", checkpoint.name, "--output", "x.nir"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "'helper.X'" in result.stderr and "not imported" in result.stderr
    assert not (tmp_path / "IMPORTED").exists() and not (tmp_path / "x.nir").exists()


@pytest.mark.parametrize("subcommand", ["validate", "test", "predict"])
def test_evaluation_does_not_import_the_class_a_checkpoint_names(
    tmp_path, quick, tiny_digits, monkeypatch, capsys, subcommand
):
    checkpoint = _planted(tmp_path / "download")
    monkeypatch.syspath_prepend(str(tmp_path / "download"))  # helper.py is importable
    args = quick.args(tmp_path / "runs", tiny_digits, "--ckpt_path", str(checkpoint))
    err = _usage_error([subcommand, *args], capsys)
    assert "'helper.X'" in err and "not imported" in err and str(checkpoint) in err
    assert not (tmp_path / "download" / "IMPORTED").exists() and "helper" not in sys.modules


def test_a_class_the_users_config_names_is_trusted(tmp_path, quick, tiny_digits, monkeypatch, capsys):
    checkpoint = _planted(tmp_path / "mine")
    monkeypatch.syspath_prepend(str(tmp_path / "mine"))
    monkeypatch.delitem(sys.modules, "helper", raising=False)
    args = quick.args(tmp_path / "runs", tiny_digits, "--model", "helper.X", "--ckpt_path", str(checkpoint))
    try:
        # accepted and built; it then fails only for being no real model (and leaves no empty run folder)
        with pytest.raises(MisconfigurationException, match="No `validation_step"):
            main(["validate", *args])
    finally:
        sys.modules.pop("helper", None)
    assert (tmp_path / "mine" / "IMPORTED").exists()
    assert not list((tmp_path / "runs").glob("*/version_*"))


def test_resume_does_not_import_what_the_checkpoints_config_names(tmp_path, monkeypatch, capsys):
    version = tmp_path / "runs" / "quickstart" / "version_0"
    checkpoint = _planted(version / "checkpoints")
    monkeypatch.syspath_prepend(str(version / "checkpoints"))
    config = {"model": {"class_path": "event_lightning.models.lif_classifier.LIFClassifier"},
              "trainer": {"callbacks": [{"class_path": "helper.X"}]}}  # fmt: skip
    (version / "config.yaml").write_text(yaml.safe_dump(config))
    err = _usage_error(["fit", "--resume", str(checkpoint)], capsys)
    assert "'helper.X'" in err and "config.yaml" in err
    assert not (version / "checkpoints" / "IMPORTED").exists()


def test_resume_refuses_a_checkpoint_of_another_class(tmp_path, quick, tiny_digits, monkeypatch, capsys):
    checkpoint = _planted(tmp_path / "download", {"lr": 0.002})
    monkeypatch.syspath_prepend(str(tmp_path / "download"))
    err = _usage_error(["fit", *quick.args(tmp_path / "runs", tiny_digits, "--resume", str(checkpoint))], capsys)
    assert "written by helper.X" in err and "LIFClassifier" in err
    assert not (tmp_path / "download" / "IMPORTED").exists()
