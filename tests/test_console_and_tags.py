"""What a quickstart run shows: no console lines a user cannot act on, and the TensorBoard tags the docs name."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from event_lightning.console import LITLOGGER_TIP, quiet_known_noise

REPO = Path(__file__).resolve().parents[1]
# The quickstart page's table row that names the logged tags.
TAG_ROW = re.compile(r"^\| `events\.out\.tfevents\.\*` \|(.*)\|$", re.MULTILINE)
TAG = re.compile(r"`((?:train|val|test|lr)[-/][\w./-]+)`")


def _documented_quickstart_tags() -> set[str]:
    (row,) = TAG_ROW.findall((REPO / "docs" / "quickstart.md").read_text())
    return set(TAG.findall(row))


@pytest.mark.slow  # a real process: imports, the tiny stand-in when not yet written, one epoch (~20-45 s)
def test_a_quickstart_run_prints_no_noise_and_logs_the_documented_tags(tmp_path, quick, tiny_digits):
    command = [sys.executable, quick.train_script, "fit", *quick.args(tmp_path / "runs", tiny_digits)]
    command += ["--trainer.max_epochs", "1", "--trainer.log_every_n_steps", "1"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    console = result.stdout + result.stderr
    assert result.returncode == 0, console
    assert "litlogger" not in console.lower() and "LeafSpec" not in console
    assert "`Trainer.fit` stopped: `max_epochs=1` reached." in console  # Lightning's other lines still show
    (run,) = (tmp_path / "runs" / "quickstart").iterdir()
    accumulator = EventAccumulator(str(run), size_guidance={"images": 0})
    accumulator.Reload()
    logged = set(accumulator.Tags()["scalars"]) | set(accumulator.Tags()["images"])
    documented = _documented_quickstart_tags()
    assert {"train/loss_step", "train/loss_epoch", "val/acc", "val/input", "val/confusion_matrix"} <= documented
    assert documented <= logged, f"documented but not logged: {sorted(documented - logged)}"


def test_only_the_two_known_messages_are_filtered():
    quiet_known_noise()
    quiet_known_noise()  # idempotent: one filter per logger
    logger = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    assert len(logger.filters) == 1
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger.addHandler(handler)
    try:
        logger.info(LITLOGGER_TIP + " to enable LitLogger.")
        logger.info("GPU available: False, used: False")
    finally:
        logger.removeHandler(handler)
    assert records == ["GPU available: False, used: False"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        quiet_known_noise()
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning, stacklevel=1)
        warnings.warn("some other deprecation", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["some other deprecation"]
