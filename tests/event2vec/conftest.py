"""Pieces the Event2Vec tests share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def tiny_stand_in_args() -> Callable[[Path], list[str]]:
    """``args(tmp_path)``: CLI overrides that shrink an ``event2vec_*synthetic.yaml`` run to seconds
    (3 letters x 10 recordings of 300 events, d 32, one loader process) and log under ``tmp_path/runs``."""

    def args(tmp_path: Path) -> list[str]:
        return [
            "--data.init_args.root", str(tmp_path / "asl"),
            "--data.init_args.synthetic.num_classes", "3",
            "--data.init_args.synthetic.samples_per_class", "10",
            "--data.init_args.synthetic.events_per_sample", "300",
            "--data.init_args.num_workers", "0",
            "--data.init_args.batch_size", "8",
            "--model.init_args.d_model", "32",
            "--model.init_args.n_head", "4",
            "--model.init_args.d_feedforward", "32",
            "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"),
            "--trainer.enable_progress_bar", "false",
        ]  # fmt: skip

    return args
