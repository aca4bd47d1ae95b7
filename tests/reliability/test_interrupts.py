"""SIGTERM and SIGKILL in the middle of a real ``train_script.py fit``, then ``--resume last``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from event_lightning.cli import main

pytestmark = pytest.mark.slow


def _start_fit(quick, runs: Path, data_root: Path, cwd: Path) -> subprocess.Popen:
    """A fit that would run for minutes (1000 tiny epochs) unless it is stopped."""
    command = [
        sys.executable,
        quick.train_script,
        "fit",
        *quick.args(runs, data_root, "--trainer.max_epochs", "1000"),
    ]
    return subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_first_checkpoint(process: subprocess.Popen, last: Path, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not last.is_file():
        if process.poll() is not None:
            pytest.fail(
                f"fit ended (status {process.returncode}) before writing {last}:\n{process.stdout.read()}"
            )
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no {last} after {timeout} s")
        time.sleep(0.05)


def _resume_to(quick, runs: Path, data_root: Path, max_epochs: int) -> None:
    main(["fit", *quick.args(runs, data_root, "--trainer.max_epochs", str(max_epochs), "--resume", "last")])


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_writes_a_checkpoint_and_resume_finishes(tmp_path, tiny_digits, quick, stop):
    runs = tmp_path / "runs"
    version = runs / "quickstart" / "version_0"
    last = version / "checkpoints" / "last.ckpt"
    process = _start_fit(quick, runs, tiny_digits, tmp_path)
    _wait_for_first_checkpoint(process, last)
    time.sleep(0.3)  # into the second epoch
    process.send_signal(stop)  # SIGINT is what Ctrl-C sends
    output, _ = process.communicate(timeout=120)

    assert process.returncode == 128 + stop, output
    assert f"stop requested by {stop.name}" in output
    state = torch.load(last, weights_only=True)
    assert state["global_step"] >= quick.steps_per_epoch
    assert f"global step {state['global_step']}; continue with --resume last" in output
    assert not list(last.parent.glob(".*"))

    _resume_to(quick, runs, tiny_digits, state["epoch"] + 2)
    final = torch.load(last, weights_only=True)
    assert final["global_step"] == (state["epoch"] + 2) * quick.steps_per_epoch
    assert [p.name for p in (runs / "quickstart").iterdir()] == ["version_0"]


def test_sigkill_mid_epoch_then_resume_last_continues_the_same_run(tmp_path, tiny_digits, quick):
    runs = tmp_path / "runs"
    version = runs / "quickstart" / "version_0"
    last = version / "checkpoints" / "last.ckpt"
    process = _start_fit(quick, runs, tiny_digits, tmp_path)
    _wait_for_first_checkpoint(process, last)
    time.sleep(0.3)
    os.kill(process.pid, signal.SIGKILL)  # no handler runs: only what is on disk survives
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL

    state = torch.load(last, weights_only=True)  # never half-written: writes are atomic
    _resume_to(quick, runs, tiny_digits, state["epoch"] + 2)
    final = torch.load(last, weights_only=True)
    assert final["epoch"] == state["epoch"] + 1
    assert final["global_step"] == (state["epoch"] + 2) * quick.steps_per_epoch
    assert [p.name for p in (runs / "quickstart").iterdir()] == ["version_0"]  # the same TensorBoard run
    assert len(list(version.glob("events.out.tfevents.*"))) == 2
