"""The facts behind docs/contributing.md, "Why we hand-write X / why we use library Y": when a
library changes so that one of them no longer holds, the choice is due for a new measurement."""

import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `bench/` is a top-level folder, not part of the package
    sys.path.insert(0, str(REPO_ROOT))

from bench import library_choices as choices  # noqa: E402
from event_lightning.events.core import EventFormatError  # noqa: E402
from event_lightning.events.formats.aedat4 import read_aedat4  # noqa: E402


def test_aedat_package_decodes_our_events_but_not_the_sensor_check(tmp_path: Path) -> None:
    valid = choices._realistic_recording(tmp_path, 20_000, "lz4")
    np.testing.assert_array_equal(choices.read_with_aedat_package(valid), read_aedat4(valid))
    hostile = choices._hostile_recordings(tmp_path, valid)
    beyond = hostile["x beyond the declared sizeX"]
    with pytest.raises(EventFormatError, match=beyond.name):
        read_aedat4(beyond)
    assert len(choices.read_with_aedat_package(beyond)) == 20_000  # the package passes them on
    cut = hostile["cut at a packet boundary"]
    with pytest.raises(EventFormatError, match=cut.name):
        read_aedat4(cut)
    with pytest.raises(Exception) as error:  # noqa: PT011 - what it raises is the point
        choices.read_with_aedat_package(cut)
    assert cut.name not in str(error.value)


def test_norse_importer_runs_none_of_the_exported_graphs() -> None:
    pytest.importorskip("norse.torch")
    for index, (graph, x) in enumerate(choices._exported_graphs().values()):
        outcome = choices._compare(choices._norse_module, graph, x[:2], choices.BenchConfig.make(True))
        assert outcome.startswith("fails:"), (choices.GRAPHS[index], outcome)


def test_early_stopping_saves_diverged_weights_and_the_guard_does_not(tmp_path: Path) -> None:
    from pytorch_lightning.callbacks import EarlyStopping

    from event_lightning.callbacks.guards import NonFiniteLossGuard

    stopped = choices._diverge_with(EarlyStopping("train/loss_step", check_finite=True), tmp_path / "early")
    assert stopped.endswith("NaN weights"), stopped
    guarded = choices._diverge_with(NonFiniteLossGuard(), tmp_path / "guard")
    assert guarded.startswith("NonFiniteLossError") and guarded.endswith(
        f"step {choices.STEPS_PER_EPOCH}, finite weights"
    ), guarded
