"""Shared test pieces: the tiny quickstart run (40 train / 20 test synthetic digits) of the entrypoint tests."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

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
