"""Shared test pieces: the tiny quickstart run (40 train / 20 test synthetic digits) of the entrypoint tests."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = str(REPO / "config" / "quickstart.yaml")
TRAIN_SCRIPT = str(REPO / "train_script.py")
STEPS_PER_EPOCH = 4  # 40 training samples, batches of 10


def tiny_args(runs: Path, data_root: Path, *extra: str) -> list[str]:
    """Arguments after the subcommand for a seconds-long quickstart run logging under ``runs``."""
    return [
        "--config",
        QUICKSTART,
        "--data.root",
        str(data_root),
        "--data.n_train",
        "40",
        "--data.n_test",
        "20",
        "--data.batch_size",
        "10",
        "--trainer.logger.init_args.save_dir",
        str(runs),
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        *extra,
    ]


@pytest.fixture(scope="session")
def tiny_digits(tmp_path_factory) -> Path:
    """One synthetic N-MNIST folder for every entrypoint test (written on first use)."""
    return tmp_path_factory.mktemp("tiny_digits")


@pytest.fixture(scope="session")
def quick() -> SimpleNamespace:
    """``args(runs, data_root, *extra)``, ``steps_per_epoch``, ``train_script`` for the tests."""
    return SimpleNamespace(args=tiny_args, steps_per_epoch=STEPS_PER_EPOCH, train_script=TRAIN_SCRIPT, repo=REPO)
