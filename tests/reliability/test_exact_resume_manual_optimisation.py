"""Resuming the HG-VAE (manual optimisation, four optimisers and schedulers, random draws in every
step) at an epoch boundary reproduces the uninterrupted run: weights, optimiser, scheduler and
random-generator states, and the data order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from event_lightning.cli import main

from .test_exact_resume import _max_abs_difference

REPO = Path(__file__).resolve().parents[2]
SYNTHETIC = {
    "n_classes": 3,
    "train_users": [1, 2],
    "test_users": [24],
    "duration_us": 120_000,
    "frame_interval_us": 5_000,
}


def _args(runs: Path, data_root: Path, max_epochs: int, *extra: str) -> list[str]:
    return [
        "fit",
        "--config",
        str(REPO / "config" / "hgvae_dvsgesture_synthetic.yaml"),
        "--trainer.callbacks=[]",
        "--trainer.max_epochs",
        str(max_epochs),
        "--trainer.deterministic",
        "true",
        "--trainer.logger.init_args.save_dir",
        str(runs),
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--trainer.num_sanity_val_steps",
        "1",
        "--model.conv_channels",
        "[4, 8]",
        "--model.pool_sizes",
        "[2, 2]",
        "--model.dimz",
        "16",
        "--model.classifier_hidden",
        "16",
        "--model.lr_drop_interval",
        "1",
        "--model.lr_drop_factor",
        "1.5",
        "--data.root",
        str(data_root),
        "--data.synthetic_config",
        json.dumps(SYNTHETIC),
        "--data.dt_us",
        "5000",
        "--data.n_time_steps",
        "8",
        "--data.start_limit",
        "1.0",
        "--data.batch_size",
        "8",
        *extra,
    ]


def _final_checkpoint(runs: Path, data_root: Path, epochs_then_resume: list[int]) -> dict:
    for i, epochs in enumerate(epochs_then_resume):
        main(_args(runs, data_root, epochs, *(["--resume", "last"] if i else [])))
    (checkpoint,) = runs.glob("**/last.ckpt")
    return torch.load(checkpoint, weights_only=True)


@pytest.mark.slow
def test_hgvae_three_epochs_straight_equal_one_then_resume(tmp_path: Path) -> None:
    data_root = tmp_path / "data"
    straight = _final_checkpoint(tmp_path / "straight", data_root, [3])
    resumed = _final_checkpoint(tmp_path / "resumed", data_root, [1, 3])
    assert straight["epoch"] == resumed["epoch"] == 2
    assert straight["global_step"] == resumed["global_step"] > 0
    differences = {
        key: _max_abs_difference(straight[key], resumed[key])
        for key in ("state_dict", "optimizer_states", "lr_schedulers")
    }
    print(f"max |straight - resumed|: {differences}")
    assert all(value <= 1e-6 for value in differences.values()), differences
    # the schedulers really stepped (LR divided by 1.5 per epoch) and the random streams match
    assert straight["lr_schedulers"][0]["last_epoch"] == 3
    rng_key = next(k for k in straight["callbacks"] if "RNGStateCheckpoint" in k)
    assert torch.equal(straight["callbacks"][rng_key]["rng"]["torch"], resumed["callbacks"][rng_key]["rng"]["torch"])


@pytest.mark.slow
def test_without_restored_random_streams_the_resume_differs(tmp_path: Path) -> None:
    """The control: with --rng_state.restore false the resumed run draws other random numbers."""
    data_root = tmp_path / "data"
    straight = _final_checkpoint(tmp_path / "straight", data_root, [2])
    runs = tmp_path / "resumed"
    main(_args(runs, data_root, 1))
    main(_args(runs, data_root, 2, "--resume", "last", "--rng_state.restore", "false"))
    (checkpoint,) = runs.glob("**/last.ckpt")
    resumed = torch.load(checkpoint, weights_only=True)
    assert _max_abs_difference(straight["state_dict"], resumed["state_dict"]) > 1e-6
