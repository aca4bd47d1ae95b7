"""Impossible combinations of settings stop before training, with a message naming the keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from event_lightning.cli import main

REPO = Path(__file__).resolve().parents[2]


def _usage_error(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_a_checkpoint_trained_on_other_classes_is_refused_before_evaluation(tmp_path, quick, tiny_digits, capsys):
    runs = tmp_path / "runs"
    main(["fit", *quick.args(runs, tiny_digits, "--trainer.max_epochs", "1")])
    (checkpoint,) = runs.glob("**/last.ckpt")
    poker = [
        "validate",
        "--config",
        str(REPO / "config" / "lif_pokerdvs.yaml"),
        "--data.synthetic",
        "true",
        "--data.root",
        str(tmp_path / "poker"),
        "--trainer.logger.init_args.save_dir",
        str(runs),
        "--ckpt_path",
        str(checkpoint),
    ]
    message = _usage_error(poker, capsys)
    assert "data.num_classes is 4" in message and "model.num_classes 10" in message and checkpoint.name in message
    # the checkpoint itself evaluates on the data it was trained for
    main(["validate", *quick.args(runs, tiny_digits, "--ckpt_path", str(checkpoint))])


def test_slicing_by_time_and_by_count_together_is_refused(tmp_path, quick, tiny_digits, capsys):
    args = quick.args(tmp_path / "runs", tiny_digits, "--data.time_window", "1000", "--data.event_count", "100")
    message = _usage_error(["fit", *args], capsys)
    assert "time_window=1000" in message and "event_count=100" in message
