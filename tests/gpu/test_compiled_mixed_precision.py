"""Every config fits a training batch and a validation batch with ``compile: true`` in mixed
precision, through the real entrypoint (issue 16, item 4): bf16-mixed, and 16-mixed where the
reference trained in fp16 (Event2Vec). The first compiled step's time is printed (``-s``).

Real-data configs run on their stand-in with few recordings but their real shapes (time steps,
sensor, widths; :mod:`bench.config_cases`), with batches of 2. Configs whose compiled graphs are
the same share one run (``graph`` in the case table). On a 2-core CPU a first compiled step takes
tens of seconds per graph, so by default one config per method runs; ``EL_GPU_CHECKS=all`` runs
one config of every graph group (32 runs).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `bench/` is a top-level folder, not part of the package
    sys.path.insert(0, str(REPO_ROOT))

from bench.config_cases import ONE_PER_METHOD, case_named, one_per_graph  # noqa: E402
from bench.config_runs import RunSettings, run_case  # noqa: E402
from bench.step_clock import finite  # noqa: E402

pytestmark = pytest.mark.slow

EVERY_CONFIG = os.environ.get("EL_GPU_CHECKS") == "all"
CASES = one_per_graph() if EVERY_CONFIG else [case_named(name) for name in ONE_PER_METHOD]
RUNS = [pytest.param(case, precision, id=f"{case.name}-{precision}") for case in CASES for precision in case.precisions]


@pytest.mark.parametrize(("case", "precision"), RUNS)
def test_config_fits_compiled_in_mixed_precision(case, precision, gpu_workdir):
    settings = RunSettings(train_steps=1, val_steps=1, precision=precision, compile=True, batch_size=2)
    report = run_case(case, gpu_workdir, settings, tag=f"-compiled-{precision}")
    print(
        f"{case.name} compiled {precision}: first training step {report['train_s'][0]:.1f} s "
        f"(compilation included), first validation step {report['val_s'][0]:.1f} s"
    )
    assert finite(report["train_loss"]), report
    assert report["val_loss"] is not None and math.isfinite(report["val_loss"]), report
