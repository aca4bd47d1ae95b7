"""Two-process DDP on CPU (gloo) through the real entrypoint: one run directory, one config."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

pytestmark = pytest.mark.slow


def test_ddp_on_two_cpu_processes_writes_one_run(tmp_path, tiny_digits, quick):
    runs = tmp_path / "runs"
    ddp = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]
    command = [
        sys.executable,
        quick.train_script,
        "fit",
        *quick.args(runs, tiny_digits, "--trainer.max_epochs", "2", *ddp),
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Starting with 2 processes" in result.stdout + result.stderr

    assert [p.name for p in (runs / "quickstart").iterdir()] == ["version_0"]
    version = runs / "quickstart" / "version_0"
    assert [p.relative_to(runs) for p in runs.rglob("config*.yaml")] == [
        version.relative_to(runs) / "config.yaml"
    ]
    # each rank sees half of the 40 training samples: 2 steps of 10 per epoch
    last = torch.load(version / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 1 and last["global_step"] == 2 * (quick.steps_per_epoch // 2)
    accumulator = EventAccumulator(str(version))
    accumulator.Reload()
    accuracy = [event.value for event in accumulator.Scalars("val/acc")]
    assert len(accuracy) == 2 and all(0.0 <= value <= 1.0 for value in accuracy)
