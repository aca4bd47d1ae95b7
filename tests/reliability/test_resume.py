"""Resuming through the real entrypoint: never a rewind, never a silently ignored setting.

Before (each test fails on the code before issue #17):

* a resume with changed ``--checkpoint.*`` flags (or from a renamed run folder) lost the checkpoint
  callback's state, wrote ``last-v1.ckpt`` and every later ``--resume last`` restarted from the
  old ``last.ckpt``;
* ``--model.init_args.lr`` given on resume was recorded but the restored optimiser kept the old rate;
* ``--model.init_args.hidden_features`` on resume rewrote config.yaml, then failed on a
  state_dict size mismatch;
* a legacy (non-zip) checkpoint failed with "mmap can only be used with ...".
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from event_lightning.cli import main


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory, tiny_digits, quick) -> Path:
    """The runs folder of a quickstart run trained for one epoch; each test resumes a copy of it."""
    runs = tmp_path_factory.mktemp("one_epoch") / "runs"
    main(["fit", *quick.args(runs, tiny_digits, "--trainer.max_epochs", "1")])
    return runs


def _copy_run(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target / "quickstart" / "version_0"


def _step(path: Path) -> int:
    return torch.load(path, weights_only=True, map_location="cpu")["global_step"]


def _last_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("last*.ckpt"))


# (max_epochs, changed checkpoint flags) of the three resumes after one epoch
RESUMES = (
    (2, ["--checkpoint.every_n_train_steps", "2"]),
    (3, ["--checkpoint.every_n_train_steps", "3", "--checkpoint.save_top_k", "2"]),
    (4, ["--checkpoint.monitor", "val/loss", "--checkpoint.mode", "min"]),
)


@pytest.mark.slow
def test_resume_last_with_changed_checkpoint_flags_continues(tmp_path, one_epoch, tiny_digits, quick):
    runs = tmp_path / "runs"
    folder = _copy_run(one_epoch, runs) / "checkpoints"
    for epochs, flags in RESUMES:
        resume = ["--trainer.max_epochs", str(epochs), "--resume", "last", *flags]
        cli = main(["fit", *quick.args(runs, tiny_digits, *resume)])
        assert cli.trainer.global_step == epochs * quick.steps_per_epoch
        assert _last_files(folder) == ["last.ckpt"]
        assert _step(folder / "last.ckpt") == epochs * quick.steps_per_epoch
    assert sorted(p.name for p in (runs / "quickstart").iterdir()) == ["version_0"]


@pytest.mark.slow
def test_resume_path_from_a_renamed_run_folder_continues(tmp_path, one_epoch, tiny_digits, quick):
    runs = tmp_path / "runs"
    _copy_run(one_epoch, runs)
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


def test_a_learning_rate_given_on_resume_reaches_the_optimiser_and_is_announced(
    tmp_path, one_epoch, tiny_digits, quick, caplog
):
    version = _copy_run(one_epoch, tmp_path / "runs")
    trained_lr = torch.load(version / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]["lr"]
    assert trained_lr != 0.5
    with caplog.at_level(logging.INFO):
        cli = main(
            ["fit", *quick.args(tmp_path / "runs", tiny_digits, "--trainer.max_epochs", "2", "--resume", "last",
                                "--model.init_args.lr", "0.5")]
        )  # fmt: skip
    assert [group["lr"] for group in cli.trainer.optimizers[0].param_groups] == [0.5]
    last = torch.load(version / "checkpoints" / "last.ckpt", weights_only=True)
    assert [group["lr"] for group in last["optimizer_states"][0]["param_groups"]] == [0.5]
    assert last["hyper_parameters"]["lr"] == 0.5
    assert "lr: 0.5" in (version / "config.yaml").read_text()
    assert f"model.init_args.lr (checkpoint: {trained_lr}, now: 0.5)" in caplog.text
    # the learning-rate curve shows what the optimiser used: the config's in epoch 0, 0.5 after the resume
    accumulator = EventAccumulator(str(version))
    accumulator.Reload()
    assert [round(event.value, 6) for event in accumulator.Scalars("lr-Adam")] == [round(trained_lr, 6), 0.5]


def test_a_shape_changed_on_resume_is_refused_before_anything_is_written(
    tmp_path, one_epoch, tiny_digits, quick, capsys
):
    version = _copy_run(one_epoch, tmp_path / "runs")
    before = {p: p.read_bytes() for p in version.rglob("*") if p.is_file()}
    with pytest.raises(SystemExit) as exit_info:
        main(
            ["fit", *quick.args(tmp_path / "runs", tiny_digits, "--trainer.max_epochs", "2", "--resume", "last",
                                "--model.init_args.hidden_features", "50", "--model.init_args.v_th", "0.5")]
        )  # fmt: skip
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "model.init_args.hidden_features (checkpoint: 100, now: 50)" in err
    assert "model.init_args.v_th (checkpoint: 0.3, now: 0.5)" in err and "cannot change" in err
    after = {p: p.read_bytes() for p in version.rglob("*") if p.is_file()}
    assert after == before  # config.yaml, logs and checkpoints untouched
    assert sorted(p.name for p in version.parent.iterdir()) == ["version_0"]


def test_a_legacy_non_zip_checkpoint_evaluates(tmp_path, one_epoch, quick, tiny_digits):
    trained = one_epoch / "quickstart" / "version_0" / "checkpoints" / "last.ckpt"
    legacy = tmp_path / "legacy.ckpt"
    torch.save(torch.load(trained, weights_only=True), legacy, _use_new_zipfile_serialization=False)
    # (--resume reads the checkpoint's hyperparameters the same way, through read_checkpoint)
    cli = main(["validate", *quick.args(tmp_path / "runs", tiny_digits, "--ckpt_path", str(legacy))])
    assert 0.0 <= float(cli.trainer.callback_metrics["val/acc"]) <= 1.0
