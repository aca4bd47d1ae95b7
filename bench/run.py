"""Side-by-side benchmarks against the libraries people use today: one table, ratios, agreement.

``python -m bench`` (or ``python bench/run.py``) runs every group of rows and prints one table:
operation, size, this project's time, the peer's time, the ratio (peer time / our time, so > 1
means we are faster) and whether the two outputs agree. Each row times both sides in the same
process on the same data: warm-up calls first, then the median of repeated calls.

``--quick`` is a short pass (fewer repeats, cost growth only up to 1M events); the full run also
writes ``docs/performance.md``. ``--only NAME`` restricts the run to some groups.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/run.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


@dataclass(frozen=True)
class BenchConfig:
    """How hard to measure: warm-up calls, timed repeats, and whether this is the quick pass."""

    quick: bool = False
    warmup: int = 1
    repeats: int = 5

    @classmethod
    def make(cls, quick: bool) -> BenchConfig:
        return cls(quick=True, warmup=1, repeats=3) if quick else cls(quick=False, warmup=2, repeats=7)


@dataclass
class Row:
    """One line of the table. Times are seconds per call (median); ``peer_s`` None = no peer.

    ``unit`` is ``"s"`` (times) or ``"B"`` (bytes: memory rows put bytes in ``ours_s`` / ``peer_s``,
    and the ratio peer bytes / our bytes is again > 1 when this project is better)."""

    group: str
    operation: str
    size: str
    ours_s: float
    peer: str = "-"
    peer_s: float | None = None
    agree: str = "-"
    note: str = ""
    unit: str = "s"

    @property
    def ratio(self) -> float | None:
        """Peer time / our time (> 1: this project is faster)."""
        return None if self.peer_s is None else self.peer_s / self.ours_s


@dataclass
class Skipped:
    """A row that could not run, with the reason printed in the table's footnotes."""

    group: str
    operation: str
    reason: str


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def median_time(fn: Callable[[], Any], cfg: BenchConfig, repeats: int | None = None) -> float:
    """Median wall time (s) of ``fn()`` over ``repeats`` calls after ``cfg.warmup`` warm-up calls."""
    for _ in range(cfg.warmup):
        fn()
    times = []
    for _ in range(repeats or cfg.repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def paired_times(
    ours: Callable[[], Any], peer: Callable[[], Any], cfg: BenchConfig, peer_repeats: int | None = None
) -> tuple[float, float]:
    """Median wall times (s) of ``ours()`` and ``peer()`` measured alternately (ours, peer, ours,
    ...) after warm-up, so that load from other jobs on a shared machine hits both sides alike.
    ``peer_repeats`` (fewer) limits the calls of a very slow peer."""
    for _ in range(cfg.warmup):
        ours()
        if peer_repeats is None:
            peer()
    ours_times, peer_times = [], []
    for k in range(cfg.repeats):
        for fn, times in ((ours, ours_times), (peer, peer_times)):
            if fn is peer and peer_repeats is not None and k >= peer_repeats:
                continue
            gc.collect()
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(ours_times), statistics.median(peer_times)


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def format_bytes(n_bytes: float | None) -> str:
    if n_bytes is None:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.2f} {unit}"
    return f"{n_bytes:.0f} B"


def format_value(value: float | None, unit: str) -> str:
    """A row's time (``unit="s"``) or size (``unit="B"``)."""
    return format_bytes(value) if unit == "B" else format_seconds(value)


def format_ratio(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.1f}x"


HEADER = ("group", "operation", "size", "this project", "peer", "peer time", "ratio", "outputs agree", "note")


def table_cells(results: Results) -> list[tuple[str, ...]]:
    return [
        (
            r.group,
            r.operation,
            r.size,
            format_value(r.ours_s, r.unit),
            r.peer,
            format_value(r.peer_s, r.unit),
            format_ratio(r.ratio),
            r.agree,
            r.note,
        )
        for r in results.rows
    ]


def format_text_table(results: Results) -> str:
    """Fixed-width text table for the terminal, skipped rows listed after it."""
    cells = [HEADER, *table_cells(results)]
    widths = [max(len(row[k]) for row in cells) for k in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += [f"skipped: {s.group} / {s.operation}: {s.reason}" for s in results.skipped]
    return "\n".join(lines)


def format_markdown_table(results: Results) -> str:
    cells = table_cells(results)
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in cells]
    return "\n".join(lines)


def machine_description() -> str:
    import numpy as np
    import torch

    gpu = "CUDA available" if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.platform()}, {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
        f"{gpu}; Python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, "
        f"torch threads {torch.get_num_threads()}"
    )


def _groups() -> dict[str, Callable[[BenchConfig, Results], None]]:
    from bench import rows_data, rows_lif, rows_memory, rows_methods, rows_represent

    return {
        "represent": rows_represent.run_representation_rows,
        "growth": rows_represent.run_growth_rows,
        "lif": rows_lif.run_lif_classifier_rows,
        "pose_lif": rows_lif.run_pose_lif_rows,
        "data": rows_data.run_data_rows,
        "methods": rows_methods.run_method_rows,
        "e2v_data": rows_methods.run_event2vec_datapath_rows,
        "dhp19_mem": rows_memory.run_dhp19_memory_rows,
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


PAGE_INTRO = """# Performance

Written by `python -m bench` (bench/run.py); rerun it to refresh this page. Every row times this
project and a peer library in the same process on the same data: {warmup} warm-up call(s), then
the median of {repeats} timed calls, alternating ours and the peer call by call so that load
from other jobs hits both sides alike. **ratio = peer time / our time** (> 1: this project is
faster). "outputs agree" compares the two results on that same data (exact equality for event
representations, tolerances stated per row for the networks).

**Machine of this run:** {machine}. The run took {elapsed:.0f} s. The box is a 2-core CPU shared
with other jobs, so absolute times are noisy; ratios (both sides measured back to back) are the
numbers to read. Without a GPU the per-method rows (groups methods, e2v_data) run on the CPU and
GPU-only measurements are **not measured**.
"""

PAGE_ANALYSIS = """
## Where the time goes in the goals not met

Profiled on this machine (numbers vary with its load):

- **to_frame, time_window=10 ms.** The output alone is 599x2x128x128 int16, 39 MB; allocating
  and first-touching that much memory costs ~2-7 ms here (it depends on whether the kernel hands
  out huge pages), before any event is counted. The events cost ~4 ms: validation (one unsigned
  reduction per field and a sortedness check, ~1.2 ms), the pixel index (~2 ms, five passes over
  the strided fields) and one int16 `np.add.at` (~1.4 ms). tonic took ~43 ms in this run (95-113 ms
  in the previous session's runs on the same kind of box), so 10x would be ~4 ms, below that
  floor. The count and bin modes sit at 4-6x here for the same reasons with smaller outputs.
- **voxel_grid.** tonic 1.7's `ToVoxelGrid` is already vectorised (two `np.add.at` over the
  events, fast since numpy 1.25): ~23 ms in this run, 25-60 ms in earlier ones. Ours keeps
  tonic's per-cell addition order (left parts of bin b, then right parts of bin b-1) while working
  through blocks of whole bins with cache-sized scratch arrays, and fuses the event checks into
  the same pass: ~6 ms, of which the 1M sequential scatter-adds that identical float sums
  require take ~2.7 ms and reading the strided fields ~1.3 ms. 10x (~2.3 ms here) would leave
  nothing for the rest in numpy.
- **denoise.** tonic loops over the events in Python: ~0.8 s for the 500k events in this run,
  1.95 s in the previous session's run on the same kind of box, so this ratio moves with the
  machine more than with our code. Ours cuts time into blocks of `floor(filter_time)` µs (an
  earlier neighbour event in the same block is always recent, the latest one in the previous
  occupied block is checked by its time, older ones never count) and keeps one cache-sized table
  over `[block, padded pixel]` whose cells pair the pixel's first event index in its block with
  its latest event index in the block before: per event one lookup per neighbour, then a minimum
  and a maximum. It takes ~16-20 ms (the previous two-table version ~55-70 ms): validation
  ~1 ms, the event-sized index and time arrays ~5 ms (much of it first-touch page faults), the
  loop over groups of 3 blocks ~11 ms (4 random lookups per event, ~20 numpy calls per group).
  100x of a 0.8 s tonic is 8 ms, below what the event-sized passes alone cost in numpy; a single
  sequential pass needs compiled code, which this project does not ship.
"""

PAGE_NOTES = """
## What each group measures

- **represent**: a DVSGesture-like stream (uniform random pixels on 128x128, 2 polarities,
  sorted times over 6 s) against tonic 1.7's transforms on the same structured array:
  `to_frame` in each slicing mode vs `ToFrame`, `voxel_grid` vs `ToVoxelGrid`, `denoise` vs
  `Denoise`, `downsample` vs `Downsample`. Outputs must be identical (array equality).
- **lif**: one training step (forward, NLL on the max readout voltage, backward, Adam step) of
  the POKER-DVS classifier (T=200, B=32, 2450 -> 100 -> 4, sparse binary input frames) against
  the same network built from norse 1.1 (`LIFRecurrentCell` + `Linear` + `LICell`, looped per
  time step) with the same initial weights. Agreement: the loss of the first step with
  SuperSpike alpha=1 (norse 1.1.0 ignores alpha in SuperSpike's backward) to 1e-5, and every
  weight gradient's worst |difference| relative to its largest entry to 1e-5.
- **pose_lif**: the pose SNN's decay-input LIF layer (`event_lightning.nn.pose.lif.lif_multistep`)
  forward + backward against spikingjelly 2.0's `LIFNode` in multi-step mode (torch backend, same
  tau, threshold, soft reset, ATan surrogate): equal spikes and input gradients to 1e-5.
- **data**: samples/s of a full pass over each DataModule's train loader (synthetic stand-ins,
  batch 32, no workers), first epoch and second epoch. These loaders have no representation
  cache (they re-read and re-frame every epoch), so the second epoch only gains the OS file
  cache and warm code paths. Both fetch a batch at a time (the dataset's `__getitems__`): the
  batch's files are read and framed in one vectorised pass and counted straight into the padded
  batch (uint8 when every count fits, else int16). The NMNIST row compares the per-sample path
  (one file read + `to_frame`) with tonic's reader + `ToFrame` on the same files.
- **growth**: `to_frame(n_time_bins=16)` as the stream grows; the exponent is the least-squares
  slope of log(time) against log(events) (1.0 = linear). Below 1 means the fixed cost per call
  (the 16x2x128x128 output, slice bounds) still dominates the small streams.
- **methods** (rows 4-6 per method): each method's synthetic config in `config/` (LIF classifier
  on the quickstart N-MNIST frames, HG-VAE N-MNIST and DVSGesture, Event2Vec, pose CNN / SNN /
  hybrid CNN-SNN on the DHP19 stand-in, TVAE), built as the CLI builds it (DataModule -> model
  links), with smaller stand-ins where the size column or note says so (`bench/rows_methods.py`
  lists the overrides). Loaders run with `num_workers=0`. *cold epoch*: `setup` plus one pass
  with an empty cache folder (stand-in files already written); *cached epoch*: two later passes,
  one before and one after the training measurement. Their "peer" is the training step's
  consumption (seconds per sample of a step), so **ratio = loader samples/s / training
  samples/s**. *train step*: median wall time of a `pl.Trainer` step (`training_step`, backward,
  optimiser) on batches fetched beforehand and held in memory, so no step waits on data.
  *peak train-step memory*: one more step; on CUDA `torch.cuda.max_memory_allocated` above the
  step's start, on the CPU the peak live bytes of the tensors the step allocates (running sum of
  the allocations and frees `torch.profiler(profile_memory=True)` records during the step:
  activations, gradients, optimiser temporaries; parameters and optimiser state, alive before the
  step, are in the note).
- **e2v_data**: Event2Vec's data path against a re-creation of the reference's
  (`bench/event2vec_datapath.py`: one compressed spikingjelly `.npz` read per sample,
  `rng.choice` of 255 events, `pad_sequence` collate) on the same ASL-DVS-sized recordings
  (~28k events each), same batch size, `num_workers=0` on both sides: batches alone, and batches
  plus a training step of the same network and optimiser (samples/s as per-sample times).
- **dhp19_mem**: bytes per DHP19 training sample. The reference's sample layout (hybrid_pose spec
  §6 and pitfall 10: `event_representation` (T,2,H,W) float32, dense one-hot `label`
  (T,13,H,W) float64, `cnn_input` (2,20,H,W) float32 for the hybrid, `landmarks` (2,T,13) and
  `label_3d` (T,3,13) float64, `ms_start`/`ms_end`; fields whose layout the spec does not give,
  such as `cnn_label`, are left out, so the reference figure is a lower bound) is computed for
  the same window configuration (100 ms windows, 10 ms bins, 10-bin CNN frames, 256x256 crop)
  and compared with what the DataLoader carries for one sample of our DHP19 DataModule on the
  synthetic stand-in at that configuration (the count stack as sparse entries, int32 index + uint8
  count per non-zero cell, made dense float32 on the device after the transfer; coordinates
  instead of dense maps), and with the size of its cache file (the same sparse entries).
- Threads: both sides run with the same torch intra-op thread count (`--threads`, default 1).
  On this shared 2-core box, 2 threads made every LIF step wait on busy cores (a single training
  step took 10-20 s instead of ~0.2-0.5 s, for norse and for us alike), so 1 thread is the
  measurement that means something here.
"""


@dataclass(frozen=True)
class Goal:
    """A ratio goal from issue 7 checked against the measured rows whose operation starts with
    ``prefix`` in ``group``: met when every such row reaches ``min_ratio`` and (with
    ``needs_agreement``) agrees."""

    text: str
    group: str
    prefix: str
    min_ratio: float
    needs_agreement: bool = True


GOALS = (
    Goal("to_frame >= 10x tonic ToFrame (every mode), identical outputs", "represent", "to_frame", 10.0),
    Goal("voxel_grid >= 10x tonic ToVoxelGrid, identical outputs", "represent", "voxel_grid", 10.0),
    Goal("denoise >= 100x tonic Denoise, identical outputs", "represent", "denoise", 100.0),
    Goal("LIF classifier train step >= 3x norse on CPU, equal loss to 1e-5", "lif", "LIF classifier", 3.0),
    Goal(
        "Cached epochs never wait on data: loader >= 5x the training step's consumption (every method)",
        "methods",
        "cached epoch",
        5.0,
        needs_agreement=False,
    ),
    Goal(
        "DHP19 bytes per training sample >= 100x below the reference's layout",
        "dhp19_mem",
        "bytes per sample",
        100.0,
        needs_agreement=False,
    ),
)


def _agrees(row: Row) -> bool:
    return row.agree == "identical" or (row.agree != "-" and not row.agree.startswith(("NO", "DIFFERENT")))


def goal_lines(results: Results) -> list[str]:
    """One line per goal: the measured worst ratio and whether the goal is met in this run."""
    lines = []
    for goal in GOALS:
        rows = [r for r in results.rows if r.group == goal.group and r.operation.startswith(goal.prefix)]
        if not rows:
            lines.append(f"- {goal.text}: not measured in this run")
            continue
        worst = min(r.ratio for r in rows if r.ratio is not None)
        if not goal.needs_agreement:
            met = worst >= goal.min_ratio
            verdict = "met" if met else "NOT met"
            lines.append(f"- {goal.text}: worst measured ratio {worst:.1f}x -> **{verdict}**")
            continue
        met = worst >= goal.min_ratio and all(_agrees(r) for r in rows)
        agree = "outputs agree" if all(_agrees(r) for r in rows) else "outputs DIFFER"
        lines.append(
            f"- {goal.text}: worst measured ratio {worst:.1f}x, {agree} -> **{'met' if met else 'NOT met'}**"
        )
    return lines


def render_performance_page(results: Results, cfg: BenchConfig, machine: str, elapsed: float) -> str:
    parts = [
        PAGE_INTRO.format(warmup=cfg.warmup, repeats=cfg.repeats, machine=machine, elapsed=elapsed),
        "## Results\n",
        format_markdown_table(results),
    ]
    parts.append("\n## Goals of issue 7 in this run\n")
    parts += goal_lines(results)
    if results.skipped:
        parts.append("\nSkipped rows:\n")
        parts += [f"- {s.group} / {s.operation}: {s.reason}" for s in results.skipped]
    parts.append(PAGE_ANALYSIS)
    parts.append(PAGE_NOTES)
    parts.append(
        "## Reproduce\n\n```\npython -m bench            # full run, rewrites this page\n"
        "python -m bench --quick    # < 2 min, prints the table only\n```\n"
    )
    return "\n".join(parts)


def write_markdown(results: Results, path: Path, cfg: BenchConfig, elapsed: float) -> None:
    """docs/performance.md: machine, method, the measured table, skipped rows, how to reproduce."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_performance_page(results, cfg, machine_description(), elapsed), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="short pass (< 2 min): fewer repeats, smaller growth"
    )
    parser.add_argument("--only", nargs="+", default=None, help="run only these groups")
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
        help="markdown page to write (default: docs/performance.md for the full run, none for --quick)",
    )
    args = parser.parse_args(argv)
    cfg = BenchConfig.make(args.quick)
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
    if output is None and not args.quick and not args.only:
        output = str(Path(__file__).resolve().parent.parent / "docs" / "performance.md")
    if output:
        write_markdown(results, Path(output), cfg, elapsed)
        print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
