"""The real entrypoint end to end on a tiny synthetic-digits run: fit, resume, evaluate, bad config."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from event_lightning.cli import drop_unaccepted_init_args, import_project_classes, main

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = str(REPO / "config" / "quickstart.yaml")


def _scalars(version_dir: Path, tag: str) -> list[tuple[int, float]]:
    accumulator = EventAccumulator(str(version_dir))
    accumulator.Reload()
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def test_fit_then_resume_last_continues_the_same_run(tmp_path, quick, tiny_digits):
    main(["fit", *quick.args(tmp_path / "runs", tiny_digits, "--trainer.max_epochs", "2")])
    run = tmp_path / "runs" / "quickstart"
    assert [p.name for p in run.iterdir()] == ["version_0"]
    version = run / "version_0"
    first = torch.load(version / "checkpoints" / "last.ckpt", weights_only=True)
    assert first["epoch"] == 1 and first["global_step"] == 8
    assert (version / "config.yaml").is_file()

    cli = main(["fit", *quick.args(tmp_path / "runs", tiny_digits, "--trainer.max_epochs", "4", "--resume", "last")])
    assert [p.name for p in run.iterdir()] == ["version_0"]  # no version_1: the same TensorBoard run
    assert cli.trainer.current_epoch == 4
    second = torch.load(version / "checkpoints" / "last.ckpt", weights_only=True)
    assert second["epoch"] == 3 and second["global_step"] == 16
    # epochs 0..3 logged once each, steps continuing in the one log directory
    epochs = [int(value) for _, value in _scalars(version, "epoch")]
    assert sorted(set(epochs)) == [0, 1, 2, 3]
    assert len(list(version.glob("events.out.tfevents.*"))) == 2


def test_resume_from_a_checkpoint_path_and_evaluate_from_checkpoint(tmp_path, quick, tiny_digits):
    main(["fit", *quick.args(tmp_path / "runs", tiny_digits, "--trainer.max_epochs", "1")])
    checkpoint = tmp_path / "runs" / "quickstart" / "version_0" / "checkpoints" / "last.ckpt"
    cli = main(
        ["fit", *quick.args(tmp_path / "runs", tiny_digits, "--trainer.max_epochs", "2", "--resume", str(checkpoint))]
    )
    assert cli.trainer.current_epoch == 2
    assert not (tmp_path / "runs" / "quickstart" / "version_1").exists()

    # a checkpoint path alone: the run's saved config.yaml supplies the rest
    cli = main(
        ["fit", "--resume", str(checkpoint), "--trainer.max_epochs", "3", "--trainer.enable_progress_bar", "false"]
    )
    assert cli.trainer.current_epoch == 3
    assert sorted(p.name for p in (tmp_path / "runs" / "quickstart").iterdir()) == ["version_0"]

    for subcommand in ("validate", "test"):
        cli = main([subcommand, *quick.args(tmp_path / "runs", tiny_digits, "--ckpt_path", str(checkpoint))])
        assert (Path(cli.trainer.log_dir) / f"config_{subcommand}.yaml").is_file()
        metrics = cli.trainer.callback_metrics
        stage = "val" if subcommand == "validate" else "test"
        assert 0.0 <= float(metrics[f"{stage}/acc"]) <= 1.0
        assert torch.isfinite(metrics[f"{stage}/loss"])

    cli = main(["predict", *quick.args(tmp_path / "runs", tiny_digits, "--ckpt_path", str(checkpoint))])
    assert (Path(cli.trainer.log_dir) / "config_predict.yaml").is_file()
    written = np.load(cli.trainer.log_dir + "/predictions.npz")
    assert sorted(written.files) == [
        "label", "prediction", "probabilities", "sample_file", "sample_index", "sample_split"
    ]  # fmt: skip
    np.testing.assert_array_equal(written["sample_index"], np.arange(20))
    assert set(written["sample_split"]) == {"test"}
    labels_from_folders = [int(Path(file).parent.name) for file in written["sample_file"]]  # NMNIST/Test/<digit>/
    np.testing.assert_array_equal(written["label"], labels_from_folders)
    assert written["probabilities"].shape == (20, 10) and written["label"].shape == (20,)
    np.testing.assert_allclose(written["probabilities"].sum(-1), np.ones(20), rtol=1e-5)
    np.testing.assert_array_equal(written["prediction"], written["probabilities"].argmax(-1))


def test_resume_last_without_a_run_says_what_is_missing(tmp_path, quick, tiny_digits, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *quick.args(tmp_path / "runs", tiny_digits, "--resume", "last")])
    assert exit_info.value.code == 2
    assert f"no last.ckpt under {tmp_path / 'runs' / 'quickstart'}" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (["--data.batch_size", "0"], "data.batch_size must be >= 1"),
        (["--data.time_window", "1000", "--data.event_count", "100"], "data: to_frame: set exactly one of time_window"),
        (["--model.init_args.hidden_features", "many"], "hidden_features"),
        (["--data.time_windw", "1000"], "time_windw"),
    ],
)
def test_bad_config_values_give_a_clear_message(tmp_path, quick, tiny_digits, capsys, override, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *quick.args(tmp_path / "runs", tiny_digits, *override)])
    assert exit_info.value.code != 0
    assert message in capsys.readouterr().err


def test_train_script_print_config_runs_as_a_program(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "train_script.py"), "fit", "--config", QUICKSTART, "--print_config"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "event_lightning.models.lif_classifier.LIFClassifier" in result.stdout
    assert "hidden_features: 100" in result.stdout


def test_link_targets_the_model_does_not_accept_are_not_saved_as_hyperparameters():
    dump = {
        "model": {
            "class_path": "event_lightning.models.lif_classifier.LIFClassifier",
            "init_args": {"sensor_size": [34, 34, 2], "num_classes": 10, "n_time_steps": 98, "lr": 0.1},
        }
    }
    drop_unaccepted_init_args(dump)
    assert dump["model"]["init_args"] == {"sensor_size": [34, 34, 2], "num_classes": 10, "lr": 0.1}


def test_bf16_mixed_precision_trains_on_cpu(tmp_path, quick, tiny_digits):
    cli = main(
        [
            "fit",
            *quick.args(
                tmp_path / "runs", tiny_digits, "--trainer.max_epochs", "3", "--trainer.precision", "bf16-mixed"
            ),
        ]
    )
    losses = [value for _, value in _scalars(Path(cli.trainer.log_dir), "train/loss_epoch")]
    assert len(losses) == 3 and all(np.isfinite(losses)) and losses[-1] < losses[0]


@pytest.mark.parametrize(
    ("option", "name", "expected"),
    [
        ("--model.help", "LIFClassifier", "--model.hidden_features"),
        ("--data.help", "NMNISTFramesDataModule", "--data.time_window"),
    ],
)
def test_help_of_a_class_named_by_its_short_name(capsys, option, name, expected):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", option, name])
    assert exit_info.value.code == 0
    assert expected in capsys.readouterr().out


def test_short_class_names_in_the_command_line_and_in_a_config(tmp_path, capsys):
    config = tmp_path / "short.yaml"
    config.write_text(
        "model:\n  class_path: LIFClassifier\n  init_args: {hidden_features: 7}\n"
        "data:\n  class_path: NMNISTFramesDataModule\n  init_args: {synthetic: true, time_window: 1000}\n"
    )
    for args in (["--config", str(config)], ["--model", "LIFClassifier", "--data", "NMNISTFramesDataModule"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["fit", *args, "--print_config"])
        assert exit_info.value.code == 0
        printed = capsys.readouterr().out
        assert "class_path: event_lightning.models.lif_classifier.LIFClassifier" in printed
        assert "class_path: event_lightning.data.datasets.nmnist.NMNISTFramesDataModule" in printed


@pytest.mark.parametrize(
    ("base", "some"),
    [
        (pl.LightningModule, {"LIFClassifier", "HybridGuidedVAE", "Event2VecClassifier", "TopographicVAE", "PoseSNN"}),
        (pl.LightningDataModule, {"NMNISTFramesDataModule", "ASLDVSDataModule", "DHP19DataModule"}),
    ],
)
def test_every_project_model_and_datamodule_has_a_unique_short_name(base, some):
    import_project_classes()
    found, stack = [], list(base.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith("event_lightning.") and not cls.__name__.startswith("_"):
            found.append(cls)
    names = [cls.__name__ for cls in set(found)]
    assert len(names) == len(set(names)), sorted(names)  # jsonargparse refuses an ambiguous short name
    assert some <= set(names)


def test_a_missing_real_dataset_is_a_usage_error_without_a_traceback(tmp_path, capsys):
    args = ["--config", str(REPO / "config" / "lif_pokerdvs.yaml"), "--data.init_args.synthetic", "false"]
    args += ["--data.init_args.root", str(tmp_path / "empty"), "--trainer.logger.init_args.save_dir", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args, "--trainer.enable_progress_bar", "false"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error: POKER-DVS: pips_train.tar.gz" in err and "offline stand-in:" in err
    assert "Traceback" not in err
    assert not list(tmp_path.glob("*/version_*"))  # the failed start left no run folder


@pytest.mark.parametrize(("value", "steps"), [("1", 1), ("1.0", 4), ("2", 2), ("0.5", 2)])
def test_limit_train_batches_reads_a_whole_number_as_a_batch_count(tmp_path, quick, tiny_digits, value, steps):
    # Lightning types limit_*_batches "float | int": jsonargparse read "1" as 1.0, a whole epoch
    assert quick.steps_per_epoch == 4
    extra = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", value, "--trainer.limit_val_batches", "1"]
    cli = main(["fit", *quick.args(tmp_path / "runs", tiny_digits, *extra)])
    assert cli.trainer.global_step == steps
    assert cli.trainer.num_val_batches == [1]
    assert type(cli.trainer.limit_train_batches) is (float if "." in value else int)
