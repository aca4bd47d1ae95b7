"""Event2Vec end to end: a short fit on the synthetic stand-in, and the real CLI entrypoint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from event_lightning.cli import main
from event_lightning.data.datasets.asl_dvs import ASLDVSDataModule
from event_lightning.data.standins.asl_dvs import SyntheticASLConfig
from event_lightning.models.event2vec import Event2VecClassifier

CONFIG = Path(__file__).resolve().parents[2] / "config" / "event2vec_synthetic.yaml"
pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning", "ignore::pytorch_lightning.utilities.warnings.PossibleUserWarning"
)


@pytest.fixture
def one_thread():
    # On a shared 2-core machine two intra-op threads oversubscribe and run several times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_short_fit_well_above_chance(tmp_path, one_thread):
    seed = int(os.environ.get("E2V_FIT_SEED", "0"))  # checked with 0, 1 and 2
    pl.seed_everything(seed, verbose=False)
    config = SyntheticASLConfig(num_classes=4, samples_per_class=40, events_per_sample=500, seed=seed)
    data = ASLDVSDataModule(
        root=str(tmp_path / "asl"),
        synthetic=config,
        sample_number=128,
        batch_size=16,
        num_workers=0,
        val_repeats=2,
    )
    model = Event2VecClassifier(
        num_classes=4, h=18, w=24, d_model=32, n_head=2, d_feedforward=64, n_layers=1, offset_t=True, lr=3e-3
    )
    trainer = pl.Trainer(
        max_epochs=25,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, data)
    accuracy = float(trainer.callback_metrics["val/acc"])
    assert accuracy >= 0.6, f"validation accuracy {accuracy:.3f} on 4 classes (chance 0.25)"
    assert float(trainer.callback_metrics["train/loss_epoch"]) < 1.0  # started at about ln 4 = 1.39


def test_cli_fit_then_validate_and_test_from_checkpoint(tmp_path, one_thread, tiny_stand_in_args):
    common = ["--config", str(CONFIG), *tiny_stand_in_args(tmp_path)]
    cli = main(["fit", *common, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
                "--trainer.limit_val_batches", "2"])  # fmt: skip
    assert cli.model.config.num_classes == 3 and cli.model.config.width == 240  # linked from the DataModule
    assert cli.model.config.embed == "neighbor1d-naive2d-2-1" and cli.model.hparams.offset_t is True
    checkpoint = tmp_path / "runs" / "event2vec_synthetic" / "version_0" / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["hyper_parameters"]["num_classes"] == 3
    for stage in ("validate", "test"):
        cli = main([stage, *common, "--ckpt_path", str(checkpoint), "--trainer.limit_val_batches", "2",
                    "--trainer.limit_test_batches", "2"])  # fmt: skip
        prefix = "val" if stage == "validate" else "test"
        assert 0.0 <= float(cli.trainer.callback_metrics[f"{prefix}/acc"]) <= 1.0
        state = cli.model.state_dict()
        torch.testing.assert_close(
            state["net.classifier.class_token"], saved["state_dict"]["net.classifier.class_token"]
        )
