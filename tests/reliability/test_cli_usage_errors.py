"""Settings and files that cannot work stop with a usage error (exit 2) naming the key or file.

Before: tracebacks (``lr 1e300`` inside Adam, ``max_epochs -5``, ``--resume`` with ``--ckpt_path``,
``--resume last`` with nothing to resume, a garbage checkpoint; the legacy one is in
test_resume.py), a conflicting ``sensor_size`` silently replaced, and an empty
``runs/<name>/version_N/`` left behind by a run that failed as it started.
"""

from __future__ import annotations

import pytest

from event_lightning.cli import main
from event_lightning.run_folders import remove_if_unused


def _usage_error(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (["--model.init_args.lr", "1e300"], "model.init_args.lr is 1e+300"),
        (["--model.init_args.v_th", ".inf"], "model.init_args.v_th is inf"),
        (["--trainer.max_epochs", "-5"], "`max_epochs` must be a non-negative integer or -1. You passed in -5"),
        (["--model.init_args.sensor_size", "[10,10,2]"], "model.init_args.sensor_size is [10, 10, 2], but the Data"),
        (["--resume", "a.ckpt", "--ckpt_path", "b.ckpt"], "give either --resume (a.ckpt) or --ckpt_path (b.ckpt)"),
        (["--resume", "last"], "--resume last: no last.ckpt under"),
        (["--resume", "missing.ckpt"], "checkpoint missing.ckpt does not exist"),
    ],
)
def test_settings_that_cannot_work_are_usage_errors(tmp_path, quick, tiny_digits, capsys, override, expected):
    err = _usage_error(["fit", *quick.args(tmp_path / "runs", tiny_digits, *override)], capsys)
    assert expected in err
    assert not (tmp_path / "runs").exists()


def test_a_garbage_checkpoint_is_a_usage_error_naming_the_file(tmp_path, quick, tiny_digits, capsys):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x00not a checkpoint" * 100)
    for subcommand, flag in (("validate", "--ckpt_path"), ("fit", "--resume"), ("fit", "--ckpt_path")):
        err = _usage_error([subcommand, *quick.args(tmp_path / "runs", tiny_digits, flag, str(garbage))], capsys)
        assert f"{garbage}: not a readable checkpoint" in err
    assert not (tmp_path / "runs").exists()


def test_a_run_that_fails_as_it_starts_leaves_no_version_folder(tmp_path, quick, tiny_digits):
    runs = tmp_path / "runs"
    (runs / "quickstart" / "version_0").mkdir(parents=True)  # an earlier run's folder, left alone
    (runs / "quickstart" / "version_0" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="data.time_window"):
        main(["fit", *quick.args(runs, tiny_digits, "--data.time_window", "100000000")])
    assert sorted(p.name for p in (runs / "quickstart").iterdir()) == ["version_0"]


def test_only_a_folder_holding_nothing_of_value_is_removed(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    empty = tmp_path / "version_0"
    (empty / "checkpoints").mkdir(parents=True)
    (empty / "config.yaml").write_text("model: {}\n")
    SummaryWriter(str(empty)).close()
    assert remove_if_unused(empty) and not empty.exists()

    logged = tmp_path / "version_1"
    with SummaryWriter(str(logged)) as writer:
        writer.add_scalar("train/loss", 1.0, 0)
    with_checkpoint = tmp_path / "version_2"
    (with_checkpoint / "checkpoints").mkdir(parents=True)
    (with_checkpoint / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    users = tmp_path / "version_3"
    users.mkdir()
    (users / "notes.txt").write_text("mine")
    for folder in (logged, with_checkpoint, users):
        assert not remove_if_unused(folder) and folder.is_dir()
