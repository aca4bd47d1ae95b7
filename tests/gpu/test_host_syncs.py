"""Every synthetic config trains and validates without host syncs: HostSyncGuard wraps two
training and two validation steps (eager) and the per-step hooks of event_lightning's callbacks
(the always-present guards and each config's own figure and energy callbacks), through the real
entrypoint (issue 16, item 4). By default one config per method; ``EL_GPU_CHECKS=all``: every
synthetic config."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `bench/` is a top-level folder, not part of the package
    sys.path.insert(0, str(REPO_ROOT))

from bench.config_cases import CASES, ONE_PER_METHOD, case_named  # noqa: E402
from bench.config_runs import RunSettings, run_case  # noqa: E402
from bench.step_clock import finite  # noqa: E402

pytestmark = pytest.mark.slow

EVERY_CONFIG = os.environ.get("EL_GPU_CHECKS") == "all"
SYNTHETIC = [c for c in CASES if c.synthetic] if EVERY_CONFIG else [case_named(n) for n in ONE_PER_METHOD]


@pytest.mark.parametrize("case", SYNTHETIC, ids=lambda c: c.name)
def test_steps_and_callbacks_do_not_sync_with_the_host(case, gpu_workdir):
    settings = RunSettings(train_steps=2, val_steps=2, host_sync_guard=True, batch_size=2)
    report = run_case(case, gpu_workdir, settings, tag="-host-syncs")
    assert len(report["train_s"]) == 2 and len(report["val_s"]) == 2 and finite(report["train_loss"])
