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


@pytest.mark.parametrize(
    ("override", "keys"),
    [
        (["--data.time_window", "500000"], "data.time_window (500000 µs) is longer than the recording"),
        (["--data.time_window", "null", "--data.event_count", "1000000"], "data.event_count (1000000) is more than"),
    ],
)
def test_slicing_longer_than_the_recordings_stops_before_training(tmp_path, quick, tiny_digits, override, keys):
    runs = tmp_path / "runs"
    with pytest.raises(ValueError) as error:
        main(["fit", *quick.args(runs, tiny_digits, *override)])
    assert keys in str(error.value) and ".bin" in str(error.value)  # names the recording
    assert not list(runs.glob("**/*.ckpt"))  # stopped before the first step


def test_hgvae_windows_longer_than_the_recordings_stop_at_setup(tmp_path):
    from event_lightning.data.datasets.dvsgesture import DVSGestureDataModule
    from event_lightning.data.datasets.nmnist import NMNISTDataModule

    synthetic = {"n_classes": 2, "train_users": [1], "test_users": [24], "duration_us": 60_000}
    gestures = DVSGestureDataModule(
        root=str(tmp_path / "g"), synthetic=True, synthetic_config=synthetic, dt_us=5_000, n_time_steps=20
    )
    with pytest.raises(ValueError, match=r"data.dt_us x data.n_time_steps = 5000 x 20 = 100000 µs is longer"):
        gestures.setup("fit")
    digits = NMNISTDataModule(
        root=str(tmp_path / "d"), synthetic=True, synthetic_config={"n_train": 4, "n_test": 2}, n_time_steps=400
    )
    with pytest.raises(ValueError, match=r"= 400000 µs is longer than the recording .*\.bin"):
        digits.setup("fit")
    # the same data with a window that fits sets up
    NMNISTDataModule(
        root=str(tmp_path / "d"), synthetic=True, synthetic_config={"n_train": 4, "n_test": 2}, n_time_steps=40
    ).setup("fit")
