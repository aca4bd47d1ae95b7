"""One config of the GPU preflight, in a process of its own: ``python -m bench.preflight_case``.

Runs the config's case (:mod:`bench.config_cases`) twice through the real entrypoint on the same
seed: eager float32 with HostSyncGuard (on CUDA it also sets ``torch.cuda.set_sync_debug_mode
("error")`` for the checked steps), then compiled in bf16-mixed; times a pass of its train loader;
writes one JSON row. Each config runs in its own process so that a crash, a hang or a memory
blow-up of one config cannot take the others down (:mod:`bench.gpu_preflight` starts them).
"""

from __future__ import annotations

import argparse
import json
import statistics
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.config_cases import case_named
from bench.config_runs import RunSettings, run_case
from bench.step_clock import finite

# First-step losses of the eager float32 and the compiled bf16-mixed run (same weights, same
# batch) agree when they differ by at most this fraction of the eager loss (bf16 keeps ~3
# significant digits; a loss summed over many terms moves by a few tenths of a percent).
LOSS_RTOL = 0.02


def compare(eager: dict[str, Any], compiled: dict[str, Any]) -> tuple[bool, str]:
    """Whether the first training losses of the two runs agree, and how far apart they are."""
    if not (finite(eager["train_loss"]) and finite(compiled["train_loss"])):
        return False, f"non-finite loss (eager {eager['train_loss']}, compiled {compiled['train_loss']})"
    a, b = eager["train_loss"][0], compiled["train_loss"][0]
    relative = abs(a - b) / max(abs(a), 1e-12)
    return relative <= LOSS_RTOL, f"first loss {a:.5g} vs {b:.5g} (rel. diff {relative:.1e})"


def _median_after_first(times: list[float]) -> float | None:
    return statistics.median(times[1:]) if len(times) > 1 else None


def run_preflight_case(name: str, workdir: Path, device: str, tiny: bool) -> dict[str, Any]:
    """The JSON row of config ``name`` (see the module docstring)."""
    case = case_named(name)
    accelerator = "gpu" if device == "cuda" else "cpu"
    steps = (2, 1) if tiny else (5, 2)
    common = {"train_steps": steps[0], "val_steps": steps[1], "accelerator": accelerator}
    batch = 2 if tiny else None
    eager = run_case(case, workdir, RunSettings(**common, batch_size=batch, host_sync_guard=True), tag="-eager")
    mixed = RunSettings(**common, batch_size=batch, precision="bf16-mixed", compile=True, loader_batches=steps[0])
    compiled = run_case(case, workdir, mixed, tag="-compiled")
    agree, detail = compare(eager, compiled)
    step_s = _median_after_first(compiled["train_s"])
    return {
        "config": name,
        "graph": case.graph,
        "ok": agree,
        "agreement": detail,
        "batch_size": compiled["batch_size"],
        "first_compiled_step_s": compiled["train_s"][0],
        "compiled_step_s": step_s,
        "eager_step_s": _median_after_first(eager["train_s"]),
        "compiled_val_step_s": _median_after_first(compiled["val_s"]) or (compiled["val_s"] or [None])[0],
        "peak_bytes": compiled["peak_bytes"],
        "step_samples_per_s": compiled["batch_size"] / step_s if step_s else None,
        "loader_samples_per_s": compiled["loader_samples_per_s"],
        "error": None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.preflight_case", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="config name (config/<name>.yaml)")
    parser.add_argument("--workdir", required=True, help="shared work folder (stand-ins, logs)")
    parser.add_argument("--device", choices=("cuda", "cpu"), required=True)
    parser.add_argument("--tiny", action="store_true", help="batches of 2, 2 training steps")
    parser.add_argument("--out", required=True, help="JSON row to write")
    args = parser.parse_args(argv)
    try:
        row = run_preflight_case(args.config, Path(args.workdir), args.device, args.tiny)
    except BaseException as error:  # noqa: BLE001 - reported as this config's failed row
        lines = traceback.format_exception(error)
        row = {"config": args.config, "ok": False, "error": f"{type(error).__name__}: {error}"[:2000]}
        row["traceback"] = "".join(lines)[-4000:]
    Path(args.out).write_text(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
