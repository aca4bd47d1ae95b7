"""Shared test pieces: the tiny quickstart run (40 train / 20 test synthetic digits) of the entrypoint tests."""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest
import torch

# pytorch_lightning is imported inside the fixtures: imported here, before pytest's log capture is
# installed, it would find the root logger without handlers and stop propagating its records, so
# `caplog` would miss every rank_zero_info of the run.
if TYPE_CHECKING:
    import pytorch_lightning as pl

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = str(REPO / "config" / "quickstart.yaml")
TRAIN_SCRIPT = str(REPO / "train_script.py")
STEPS_PER_EPOCH = 4  # 40 training samples, batches of 10
MAX_TEST_WORKERS = 4


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (pyproject's addopts): one worker per usable core, at most MAX_TEST_WORKERS.

    Most of the suite's time is single-threaded (Lightning start-up, subprocess entrypoint runs,
    2-process DDP launches), so a worker per core pays off; more than four would multiply the
    memory of torch in every worker and of the DDP runs they start without shortening the longest test.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MAX_TEST_WORKERS, cores))


def tiny_args(runs: Path, data_root: Path, *extra: str) -> list[str]:
    """Arguments after the subcommand for a seconds-long quickstart run logging under ``runs``.

    At a constant learning rate (the quickstart decays it to 0 over ``max_epochs``): the resume tests
    set a rate on resume and read it back from the optimiser, which a finished decay would scale to 0.
    """
    return [
        "--config",
        QUICKSTART,
        "--model.init_args.lr_schedule",
        "none",
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


@pytest.fixture
def dynamo_recompiles():
    """The recompilation messages of ``torch.compile`` during the test (what ``TORCH_LOGS=recompiles``
    prints), with dynamo's caches cleared before and after."""
    messages: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = _Collect()
    logger = logging.getLogger("torch._dynamo")
    torch._dynamo.reset()
    torch._logging.set_logs(recompiles=True)
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)
    torch._logging.set_logs()
    torch._dynamo.reset()


@pytest.fixture
def aot_eager_compile(monkeypatch):
    """``nn.Module.compile()`` with the ``aot_eager`` backend: dynamo and AOT autograd run as in a real
    compiled run (graphs, guards, recompiles, autocast, the backward), without inductor's C++
    code generation, which takes minutes on a loaded CPU."""
    compile_aot_eager = functools.partialmethod(torch.nn.Module.compile, backend="aot_eager")
    monkeypatch.setattr(torch.nn.Module, "compile", compile_aot_eager)


@pytest.fixture
def quiet_cpu_trainer():
    """``make(**overrides)``: a CPU Trainer without logger, checkpoints, progress bar or summary."""

    import pytorch_lightning as pl

    def make(**overrides) -> pl.Trainer:
        settings = {
            "max_epochs": 1,
            "logger": False,
            "enable_checkpointing": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "accelerator": "cpu",
        }
        return pl.Trainer(**{**settings, **overrides})

    return make


@pytest.fixture
def host_sync_checked_transfer():
    """``wrap(datamodule)``: its ``on_after_batch_transfer`` runs under ``forbid_host_syncs`` from
    then on; returns the list of the ``dataloader_idx`` of every batch it checked."""
    from event_lightning.callbacks.host_sync import forbid_host_syncs

    def wrap(data: pl.LightningDataModule) -> list[int]:
        transfer, calls = data.on_after_batch_transfer, []

        def on_after_batch_transfer(batch, dataloader_idx):
            with forbid_host_syncs(f"{type(data).__name__}.on_after_batch_transfer"):
                calls.append(dataloader_idx)
                return transfer(batch, dataloader_idx)

        data.on_after_batch_transfer = on_after_batch_transfer
        return calls

    return wrap


@pytest.fixture
def ddp_replicas_equal(tmp_path):
    """``check(config, *overrides, steps=3)``: ``fit`` through the real entrypoint on 2 CPU processes
    (gloo DDP) with :class:`RankConsistencyCheck`, then assert that both ranks reached ``steps`` and
    report the same weight fingerprints; returns the two reports."""

    def check(config: str, *overrides: str, steps: int = 3) -> list[dict]:
        report = tmp_path / "rank_reports"
        command = [
            sys.executable, TRAIN_SCRIPT, "fit", "--config", str(REPO / "config" / config), *overrides,
            "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"), "--trainer.enable_progress_bar", "false",
            "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
            "--trainer.max_steps", str(steps),
            "--trainer.callbacks+=event_lightning.callbacks.rank_consistency.RankConsistencyCheck",
            "--trainer.callbacks.report_dir", str(report),
        ]  # fmt: skip
        result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        ranks = [json.loads((report / f"rank{rank}.json").read_text()) for rank in (0, 1)]
        assert [r["global_step"] for r in ranks] == [steps, steps] and ranks[0]["checks"] >= 2
        assert ranks[0]["fingerprints"] == ranks[1]["fingerprints"]
        return ranks

    return check


@pytest.fixture(scope="session")
def dhp19_two_cameras(tmp_path_factory):
    """``make(name)``: a new folder holding the two-camera DHP19 stand-in (subjects 1 and 13,
    cameras 2 and 3, 600 ms recordings) that the pose data, prediction and figure tests share."""
    from event_lightning.data.standins.dhp19 import SyntheticDHP19Config, write_synthetic_dhp19

    def make(name: str) -> Path:
        folder = tmp_path_factory.mktemp(name)
        write_synthetic_dhp19(folder, SyntheticDHP19Config(subjects=(1, 13), duration_ms=600, cameras=(2, 3), seed=3))
        return folder

    return make
