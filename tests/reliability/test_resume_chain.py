"""Resumes with changed ``--checkpoint.*`` flags, or from a renamed run folder, never rewind.

Lightning keys the checkpoint callback's state by its monitor, mode and save frequencies; when a
resume changed one of them the state was dropped, the new state went to ``last-v1.ckpt`` and
``--resume last`` kept reading the old ``last.ckpt``: every resume restarted from epoch 1.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from event_lightning.callbacks.checkpoint import STATE_KEY, RunCheckpoint
from event_lightning.cli import main

# (max_epochs, changed checkpoint flags) of the three resumes after one epoch
RESUMES = (
    (2, ["--checkpoint.every_n_train_steps", "2"]),
    (3, ["--checkpoint.every_n_train_steps", "3", "--checkpoint.save_top_k", "2"]),
    (4, ["--checkpoint.monitor", "val/loss", "--checkpoint.mode", "min"]),
)


def _step(path: Path) -> int:
    return torch.load(path, weights_only=True, map_location="cpu")["global_step"]


def _last_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("last*.ckpt"))


@pytest.mark.slow
def test_resume_last_with_changed_checkpoint_flags_continues(tmp_path, tiny_digits, quick):
    runs = tmp_path / "runs"
    main(["fit", *quick.args(runs, tiny_digits, "--trainer.max_epochs", "1")])
    folder = runs / "quickstart" / "version_0" / "checkpoints"
    for epochs, flags in RESUMES:
        resume = ["--trainer.max_epochs", str(epochs), "--resume", "last", *flags]
        cli = main(["fit", *quick.args(runs, tiny_digits, *resume)])
        assert cli.trainer.global_step == epochs * quick.steps_per_epoch
        assert _last_files(folder) == ["last.ckpt"]
        assert _step(folder / "last.ckpt") == epochs * quick.steps_per_epoch
    assert sorted(p.name for p in (runs / "quickstart").iterdir()) == ["version_0"]


@pytest.mark.slow
def test_resume_path_from_a_renamed_run_folder_continues(tmp_path, tiny_digits, quick):
    runs = tmp_path / "runs"
    main(["fit", *quick.args(runs, tiny_digits, "--trainer.max_epochs", "1")])
    # the run is moved after its first epoch: the checkpoint's state names the old folder
    moved = runs / "quickstart" / "version_7"
    (runs / "quickstart" / "version_0").rename(moved)
    folder = moved / "checkpoints"
    best_before = sorted(p.name for p in folder.glob("epoch=*.ckpt"))
    for epochs, flags in RESUMES:
        resume = ["--trainer.max_epochs", str(epochs), "--resume", str(folder / "last.ckpt"), *flags]
        cli = main(["fit", *quick.args(runs, tiny_digits, *resume)])
        assert cli.trainer.global_step == epochs * quick.steps_per_epoch
        assert _last_files(folder) == ["last.ckpt"]
        assert _step(folder / "last.ckpt") == epochs * quick.steps_per_epoch
        assert cli.trainer.log_dir == str(moved)
    # the top-k files were re-anchored in the renamed folder: none is versioned ("-v1")
    top_k = sorted(p.name for p in folder.glob("epoch=*.ckpt"))
    assert best_before and not [name for name in top_k if "-v" in name]
    assert sorted(p.name for p in (runs / "quickstart").iterdir()) == ["version_7"]


def test_the_state_saved_under_lightnings_old_key_is_adopted(tmp_path):
    # as written before the fixed key: Lightning's key made of monitor, mode and frequencies
    old_key = (
        "RunCheckpoint{'monitor': 'val/acc', 'mode': 'max', 'every_n_train_steps': 0, 'every_n_epochs': 1, "
        "'train_time_interval': None}"
    )
    state = {"monitor": "val/acc", "last_model_path": str(tmp_path / "last.ckpt"), "dirpath": str(tmp_path)}
    checkpoint = {"callbacks": {old_key: state, "RNGStateCheckpoint": {}}}
    callback = RunCheckpoint(monitor="val/acc", mode="max", every_n_train_steps=2)
    assert callback.state_key == STATE_KEY
    callback.on_load_checkpoint(None, None, checkpoint)
    assert checkpoint["callbacks"] == {STATE_KEY: state, "RNGStateCheckpoint": {}}


def test_paths_of_a_moved_run_are_reanchored_and_missing_files_dropped(tmp_path):
    old, new = tmp_path / "old" / "checkpoints", tmp_path / "new" / "checkpoints"
    new.mkdir(parents=True)
    (new / "last.ckpt").touch()
    (new / "epoch=0-step=4.ckpt").touch()
    state = {
        "monitor": "val/acc",
        "dirpath": str(old),
        "best_model_score": torch.tensor(0.5),
        "best_model_path": str(old / "epoch=0-step=4.ckpt"),
        "kth_best_model_path": str(old / "epoch=0-step=4.ckpt"),
        "kth_value": torch.tensor(0.5),
        "last_model_path": str(old / "last.ckpt"),
        "best_k_models": {str(old / "epoch=0-step=4.ckpt"): torch.tensor(0.5), str(old / "gone.ckpt"): 0.1},
    }
    callback = RunCheckpoint(monitor="val/acc", mode="max")
    callback.dirpath = str(new)
    callback.load_state_dict(state)
    assert callback.last_model_path == str(new / "last.ckpt")
    assert callback.best_model_path == str(new / "epoch=0-step=4.ckpt")
    assert list(callback.best_k_models) == [str(new / "epoch=0-step=4.ckpt")]
