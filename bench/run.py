"""Side-by-side benchmarks against the libraries people use today: one table, ratios, agreement.

``python -m bench`` (or ``python bench/run.py``) runs every group of rows and prints one table:
operation, size, this project's time, the peer's time, the ratio (peer time / our time, so > 1
means we are faster) and whether the two outputs agree. Each row times both sides in the same
process on the same data: warm-up calls first, then the median of repeated calls.

``--quick`` is a short pass (fewer repeats, cost growth only up to 1M events); the full run also
writes ``docs/performance.md``. ``--only NAME`` restricts the run to some groups.

``--gpu-preflight`` runs :mod:`bench.gpu_preflight` instead: every config eager vs compiled
bf16-mixed on a GPU, with a pass/fail summary and a GPU section in ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import (  # noqa: E402
    gpu_preflight,
    rows_data,
    rows_e2v_data,
    rows_figures,
    rows_lif,
    rows_memory,
    rows_methods,
    rows_reference,
    rows_represent,
    rows_step_growth,
)
from bench.measure import BenchConfig, machine_description  # noqa: E402
from bench.page import write_markdown  # noqa: E402
from bench.results import Results  # noqa: E402
from bench.table import format_ratio, format_text_table, format_value  # noqa: E402


def _groups() -> dict[str, Callable[[BenchConfig, Results], None]]:
    return {
        "represent": rows_represent.run_representation_rows,
        "growth": rows_represent.run_growth_rows,
        "lif": rows_lif.run_lif_classifier_rows,
        "pose_lif": rows_lif.run_pose_lif_rows,
        "data": rows_data.run_data_rows,
        "methods": rows_methods.run_method_rows,
        "e2v_data": rows_e2v_data.run_event2vec_datapath_rows,
        "dhp19_mem": rows_memory.run_dhp19_memory_rows,
        "figures": rows_figures.run_figure_rows,
        "reference": rows_reference.run_reference_rows,
        "step_growth": rows_step_growth.run_step_growth_rows,
    }


def run(cfg: BenchConfig, only: Sequence[str] | None = None, echo: bool = True) -> Results:
    """Run the selected groups (all by default) and return their rows."""
    groups = _groups()
    unknown = sorted(set(only or ()) - set(groups))
    if unknown:
        raise ValueError(f"bench: unknown group(s) {unknown}; choose from {sorted(groups)}")
    results = Results()
    for name, fn in groups.items():
        if only and name not in only:
            continue
        start = time.perf_counter()
        before = len(results.rows)
        fn(cfg, results)
        if echo:
            for row in results.rows[before:]:
                print(
                    f"  [{name}] {row.operation} ({row.size}): ours {format_value(row.ours_s, row.unit)}, "
                    f"{row.peer} {format_value(row.peer_s, row.unit)}, ratio {format_ratio(row.ratio)}, "
                    f"agree {row.agree}",
                    flush=True,
                )
            print(f"[{name}] done in {time.perf_counter() - start:.1f} s", flush=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short pass (< 2 min): fewer repeats, smaller growth")
    parser.add_argument("--only", nargs="+", default=None, help="run only these groups")
    parser.add_argument(
        "--method",
        nargs="+",
        default=(),
        help="group reference only: compare just the methods whose name contains one of these words "
        "(e.g. --only reference --method pose)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads for both sides (default 1: on a shared 2-core box more threads "
        "than free cores makes every step wait on busy peers)",
    )
    parser.add_argument(
        "--output",
        default=None,
        help="markdown page to write (default: docs/performance.md for the full run and for --gpu-preflight "
        "on CUDA, none for --quick)",
    )
    parser.add_argument(
        "--gpu-preflight",
        action="store_true",
        help="check every config on a GPU (eager fp32 vs compiled bf16-mixed, host syncs, loader vs step) "
        "and write the GPU section of docs/performance.md",
    )
    gpu_preflight.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.gpu_preflight:
        return gpu_preflight.main(args)
    cfg = dataclasses.replace(BenchConfig.make(args.quick), methods=tuple(args.method))
    import torch

    torch.set_num_threads(args.threads)
    print(f"machine: {machine_description()}", flush=True)
    start = time.perf_counter()
    results = run(cfg, args.only)
    elapsed = time.perf_counter() - start
    print()
    print(format_text_table(results))
    print(f"\ntotal {elapsed:.1f} s")
    output = args.output
    if output is None and not args.quick and not args.only and not args.method:
        output = str(Path(__file__).resolve().parent.parent / "docs" / "performance.md")
    if output:
        write_markdown(results, Path(output), cfg, elapsed)
        print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
