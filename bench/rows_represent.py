"""Rows 1 and 7: event representations and filters against tonic 1.7, and how their cost grows.

The represent group times each compiled kernel against tonic on one 500k-event stream, says how
far it is from this machine's memory bandwidth (bytes it touches per second against a copy
measured in the same run), and times the first calls of a fresh process (JIT compile with an empty
numba cache, then loading the cache). The growth group times every kernel from 10k to 10M events
and measures its peak traced memory; the fitted exponents say whether cost grows linearly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import tracemalloc
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.measure import BenchConfig, median_time, paired_times
from bench.results import Results, Row, Skipped
from bench.table import format_bytes
from event_lightning.events.augment import denoise, downsample, refractory_period
from event_lightning.events.core import EVENT_DTYPE, SensorSize
from event_lightning.events.kernels.loading import fallback_reason
from event_lightning.events.represent.frames import to_frame
from event_lightning.events.represent.slicing import FrameSlicing, _slice_bounds
from event_lightning.events.represent.voxel import voxel_grid

GESTURE_SENSOR = SensorSize(128, 128, 2)
GESTURE_DURATION_US = 6_000_000
RECORD = EVENT_DTYPE.itemsize  # bytes per event record
COPY_BYTES = 128 * 2**20  # large enough to leave every cache
_PAGE_BYTES = 4096


def gesture_like_events(n_events: int, seed: int = 0, duration_us: int = GESTURE_DURATION_US) -> np.ndarray:
    """A DVSGesture-like stream: uniform pixels on 128x128, random polarity, sorted times (µs)."""
    rng = np.random.default_rng(seed)
    events = np.empty(n_events, dtype=EVENT_DTYPE)
    events["x"] = rng.integers(0, GESTURE_SENSOR.width, n_events)
    events["y"] = rng.integers(0, GESTURE_SENSOR.height, n_events)
    events["t"] = np.sort(rng.integers(0, duration_us, n_events))
    events["p"] = rng.integers(0, 2, n_events)
    return events


def _same_events(a: np.ndarray, b: np.ndarray) -> bool:
    return len(a) == len(b) and all(np.array_equal(a[name], b[name]) for name in ("x", "y", "t", "p"))


def _same_array(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a, b)


def _filter_bytes(events: np.ndarray, kept: np.ndarray) -> int:
    """Checking pass and filter pass over the records, the keep mask written and read, the copy
    pass reading the records and writing the kept ones."""
    return 3 * RECORD * len(events) + 2 * len(events) + RECORD * len(kept)


@dataclass(frozen=True)
class Kernel:
    """One measured operation: our call, tonic's transform, how to compare their outputs, and the
    bytes our call moves through memory at least (the model behind the bandwidth column)."""

    label: str
    ours: Callable[[np.ndarray], Any]
    peer: Callable[[Any], Callable[[np.ndarray], Any]]  # tonic.transforms -> transform
    peer_name: str
    same: Callable[[Any, Any], bool]
    bytes_touched: Callable[[np.ndarray, Any], int]
    slow_peer: bool = False  # a per-event Python loop: fewer calls
    note: Callable[[Any], str] = lambda out: ""


def _frame_kernel(label: str, **kwargs: Any) -> Kernel:
    def frame_bytes(events: np.ndarray, frames: np.ndarray) -> int:
        # each event read once per frame holding it (overlaps re-read), every frame cell written once
        starts, ends = _slice_bounds(events["t"], FrameSlicing(**kwargs))
        members = int(np.maximum(ends - starts, 0).sum())
        return RECORD * max(len(events), members) + frames.nbytes

    return Kernel(
        label,
        lambda ev: to_frame(ev, GESTURE_SENSOR, **kwargs),
        lambda tt: tt.ToFrame(sensor_size=GESTURE_SENSOR.as_tonic(), **kwargs),
        "tonic ToFrame",
        _same_array,
        frame_bytes,
        note=lambda frames: f"{len(frames)} frames",
    )


def _filter_kernel(label: str, ours: Callable[[np.ndarray], np.ndarray], peer: str, **peer_options: Any) -> Kernel:
    """A filter against tonic's transform ``peer``, whose per-event Python loop gets fewer calls."""
    return Kernel(
        label,
        ours,
        lambda tt: getattr(tt, peer)(**peer_options),
        f"tonic {peer}",
        _same_events,
        _filter_bytes,
        slow_peer=True,
    )


KERNELS = (
    _frame_kernel("to_frame(time_window=10 ms)", time_window=10_000),
    _frame_kernel("to_frame(event_count=5000)", event_count=5000),
    _frame_kernel("to_frame(n_time_bins=16)", n_time_bins=16),
    _frame_kernel("to_frame(n_event_bins=16)", n_event_bins=16),
    _frame_kernel("to_frame(n_time_bins=16, overlap=0.5)", n_time_bins=16, overlap=0.5),
    Kernel(
        "voxel_grid(16 bins)",
        lambda ev: voxel_grid(ev, GESTURE_SENSOR, 16),
        lambda tt: tt.ToVoxelGrid(sensor_size=GESTURE_SENSOR.as_tonic(), n_time_bins=16),
        "tonic ToVoxelGrid",
        lambda ours, peer: ours.shape == peer.shape and np.array_equal(ours.view(np.uint64), peer.view(np.uint64)),
        lambda ev, grid: 2 * RECORD * len(ev) + grid.nbytes,  # the records read twice (left, right parts)
    ),
    _filter_kernel("denoise(filter_time=10 ms)", lambda ev: denoise(ev, 10_000), "Denoise", filter_time=10_000),
    _filter_kernel(
        "refractory_period(delta=1 ms)", lambda ev: refractory_period(ev, 1_000), "RefractoryPeriod", delta=1_000
    ),
    Kernel(
        "downsample(spatial 0.5, time 0.001)",
        lambda ev: downsample(ev, GESTURE_SENSOR, spatial_factor=0.5, time_factor=0.001)[0],
        lambda tt: tt.Downsample(spatial_factor=0.5, time_factor=0.001),
        "tonic Downsample",
        _same_events,
        lambda ev, out: RECORD * (len(ev) + len(out)),
    ),
)
# one row per compiled kernel in the growth and first-call rows (the to_frame modes share one)
GROWTH_KERNELS = tuple(
    k for k in KERNELS if not k.label.startswith("to_frame") or k.label == "to_frame(n_time_bins=16)"
)


def _agree(ok: bool) -> str:
    return "identical" if ok else "DIFFERENT"


def copy_seconds(n_bytes: int, cfg: BenchConfig) -> float:
    """Seconds per ``np.copyto`` of ``n_bytes`` between two arrays already in memory (pages
    faulted): read + write bandwidth is ``2 * n_bytes`` over it. At ``COPY_BYTES`` that is main
    memory's; at the size of the event stream, what a kernel that finds the stream in cache
    (as repeated calls do) can reach."""
    source = np.ones(n_bytes, dtype=np.uint8)
    target = np.zeros_like(source)
    return median_time(lambda: np.copyto(target, source), cfg)


def _bandwidth_note(n_bytes: int, seconds: float, copy_rates: tuple[float, float]) -> str:
    rate = n_bytes / seconds
    memory, stream = (100 * rate / r for r in copy_rates)
    return (
        f"{format_bytes(n_bytes)} touched: {rate / 1e9:.1f} GB/s = {memory:.0f}% of the main-memory copy, "
        f"{stream:.0f}% of the stream-sized copy"
    )


def run_representation_rows(
    cfg: BenchConfig, results: Results, n_events: int = 500_000, first_calls: bool = True
) -> None:
    """Row 1: every kernel against tonic on 500k events / 6 s (``n_events`` smaller only for the
    smoke test), the copy bandwidth they are held against, and (``first_calls``) the first calls
    of a new process."""
    try:
        import tonic.transforms as tt
    except ImportError as error:  # pragma: no cover - tonic is a benchmark-only peer
        results.skipped.append(Skipped("represent", "all", f"tonic not importable: {error}"))
        return
    events = gesture_like_events(n_events)
    copy_rates = []
    for n_bytes, what in ((COPY_BYTES, "main memory"), (events.nbytes, "the event stream's size, in cache")):
        seconds = copy_seconds(n_bytes, cfg)
        copy_rates.append(2 * n_bytes / seconds)
        results.rows.append(
            Row(
                "represent",
                f"memory bandwidth: np.copyto ({what})",
                format_bytes(n_bytes),
                seconds,
                note=f"{copy_rates[-1] / 1e9:.1f} GB/s read + write: the kernels' bandwidth notes compare with this",
            )
        )
    size = f"{n_events // 1000}k ev, 6 s, 128x128"
    for kernel in KERNELS:
        peer = kernel.peer(tt)
        ours_out, peer_out = kernel.ours(events), peer(events)  # tonic's transforms leave their input as it is
        peer_repeats = (1 if cfg.quick else 3) if kernel.slow_peer else None
        ours_t, peer_t = paired_times(
            lambda k=kernel: k.ours(events), lambda f=peer: f(events), cfg, peer_repeats=peer_repeats
        )
        touched = kernel.bytes_touched(events, ours_out)
        notes = [kernel.note(ours_out), _bandwidth_note(touched, ours_t, (copy_rates[0], copy_rates[1]))]
        if peer_repeats:
            notes.append(f"peer: median of {peer_repeats}, no warm-up")
        if fallback_reason() is not None:  # known once a kernel was asked for
            notes.append(f"numpy fallback ({fallback_reason()})")
        agree = _agree(kernel.same(ours_out, peer_out))
        note = "; ".join(n for n in notes if n)
        results.rows.append(Row("represent", kernel.label, size, ours_t, kernel.peer_name, peer_t, agree, note))
    _fresh_memory_rows(events, tt.ToFrame(sensor_size=GESTURE_SENSOR.as_tonic(), time_window=10_000), cfg, results)
    _voxel_adds_row(events, cfg, results)
    if first_calls:
        _first_call_rows(results)


def _fresh_memory_rows(
    events: np.ndarray, peer: Callable[[np.ndarray], np.ndarray], cfg: BenchConfig, results: Results
) -> None:
    """Two rows on the largest output (to_frame(time_window=10 ms), 599 frames, 39 MB): the cost of
    faulting in a fresh mapping of that size, and to_frame against tonic when the caller keeps its
    outputs, so that every call writes into fresh memory as tonic's does (the rows above drop each
    output, whose memory the next call reuses: :mod:`event_lightning.events.represent.reused_memory`)."""
    held: deque[np.ndarray] = deque(maxlen=2)  # as many as are kept for reuse: none is free

    def ours() -> None:
        held.append(to_frame(events, GESTURE_SENSOR, time_window=10_000))

    ours()
    agree = _agree(_same_array(held[-1], peer(events)))
    ours_t, peer_t = paired_times(ours, lambda: peer(events), cfg)
    n_bytes, n_frames = held[-1].nbytes, len(held[-1])
    held.clear()

    def first_touch() -> None:
        np.empty(n_bytes, dtype=np.uint8)[::_PAGE_BYTES] = 0

    touch_t = median_time(first_touch, cfg)
    results.rows.append(
        Row(
            "represent",
            "fresh output memory: to_frame(time_window=10 ms), the caller keeping its outputs",
            f"{len(events) // 1000}k ev, {n_frames} frames",
            ours_t,
            "tonic ToFrame",
            peer_t,
            agree,
            "every output in a fresh mapping (page faults included, as tonic's np.zeros); bound: faulting in "
            f"the output alone (next row) is {100 * touch_t / ours_t:.0f}% of this, so a kernel costing nothing "
            f"beyond it would reach {peer_t / touch_t:.1f}x",
        )
    )
    results.rows.append(
        Row(
            "represent",
            "page faults: np.empty + one write per 4 KiB page",
            format_bytes(n_bytes),
            touch_t,
            note="what any fresh output of to_frame(time_window=10 ms)'s size costs before a count is written "
            f"(the operating system zeroing its pages): {100 * touch_t / ours_t:.0f}% of to_frame with fresh "
            f"memory, {100 * touch_t / peer_t:.0f}% of tonic's ToFrame",
        )
    )


# Run in a fresh interpreter: numba's start first (what any first kernel of a process pays: importing
# numba, setting up its compiler target, which imports scipy.linalg for BLAS unless already imported,
# as Lightning does), then the first and second call of every kernel on a small stream, so the
# difference is what that kernel's first call adds (compile or cache load). The imports before it
# (numpy, torch through event_lightning.events) are not counted.
_FIRST_CALL_SCRIPT = """
import json, time
from bench.rows_represent import GROWTH_KERNELS, gesture_like_events
events = gesture_like_events(20_000)
extra = {}
start = time.perf_counter()
import numba
numba.njit("void()")(lambda: None)  # numba's one-time start: its import, target set-up, LLVM
extra["numba start"] = time.perf_counter() - start
for kernel in GROWTH_KERNELS:
    start = time.perf_counter(); kernel.ours(events); first = time.perf_counter() - start
    start = time.perf_counter(); kernel.ours(events); extra[kernel.label] = first - (time.perf_counter() - start)
print(json.dumps(extra))
"""


def _first_calls(cache_dir: str) -> dict[str, float]:
    """Seconds the first call of each kernel adds in a new process using ``cache_dir`` as numba's cache."""
    root = str(Path(__file__).resolve().parent.parent)
    python_path = os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, PYTHONPATH=python_path)
    done = subprocess.run(
        [sys.executable, "-c", _FIRST_CALL_SCRIPT], cwd=root, env=env, capture_output=True, text=True, timeout=900
    )
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _voxel_adds_row(events: np.ndarray, cfg: BenchConfig, results: Results, n_bins: int = 16) -> None:
    """voxel_grid's scattered adds alone: each event's left part into its bin's row, then its right
    part into the next row, cells and weights precomputed (no record decoding, division or checks).

    tonic's order of additions (every left part of a cell before the right parts) forbids merging
    an event's two adds, so every implementation that reproduces its sums bit for bit makes these
    ``2·N`` read-modify-writes at random cells of a row (128 KiB at 128x128: in L2, not in L1).
    """
    import numba

    @numba.njit(nogil=True)
    def add_left_then_right(cells, rows, weights, grid, plane):  # pragma: no cover - compiled
        for i in range(len(cells)):
            grid[rows[i] * plane + cells[i]] += weights[i]
        for i in range(len(cells)):
            grid[(rows[i] + 1) * plane + cells[i]] += weights[i]

    plane = GESTURE_SENSOR.width * GESTURE_SENSOR.height
    t = events["t"].astype(np.float64)
    tau = n_bins * (t - t[0]) / (t[-1] - t[0])
    rows = np.minimum(tau, n_bins - 1).astype(np.int64)
    cells = events["y"].astype(np.int64) * GESTURE_SENSOR.width + events["x"]
    weights = tau - rows
    grid = np.zeros((n_bins + 1) * plane)
    adds_t = median_time(lambda: add_left_then_right(cells, rows, weights, grid, plane), cfg)
    voxel = next(r for r in results.rows if r.group == "represent" and r.operation.startswith("voxel_grid"))
    results.rows.append(
        Row(
            "represent",
            "voxel_grid's scattered adds alone (left parts, then right parts)",
            f"{2 * len(events) // 1000}k adds into {plane * 8 // 1024} KiB rows",
            adds_t,
            note=f"{100 * adds_t / voxel.ours_s:.0f}% of voxel_grid; tonic's ToVoxelGrid / these adds = "
            f"{voxel.peer_s / adds_t:.1f}x: the ratio of a voxel grid that made these adds and nothing else",
        )
    )


def _first_call_rows(results: Results) -> None:
    """Two rows: the first calls with an empty numba cache (JIT compile), then with that cache
    filled (load); each the sum over the kernels, one kernel per entry of the note."""
    if fallback_reason() is not None:
        results.skipped.append(Skipped("represent", "first calls", f"numpy fallback: {fallback_reason()}"))
        return
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache_dir:
        try:
            runs = [("first calls, empty numba cache (JIT compile)", _first_calls(cache_dir))]
            runs.append(("first calls, numba cache filled (load)", _first_calls(cache_dir)))
        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
            results.skipped.append(Skipped("represent", "first calls", f"subprocess failed: {error}"))
            return
    for operation, extra in runs:
        parts = ", ".join(f"{label.split('(')[0]} {seconds:.2f} s" for label, seconds in extra.items())
        results.rows.append(
            Row(
                "represent",
                operation,
                "new process, 20k ev",
                sum(extra.values()),
                note=f"numba's start, then first call minus second per kernel: {parts} (refractory_period's "
                "kernels come with denoise's module)",
            )
        )


def fitted_exponent(sizes: list[int], values: list[float]) -> float:
    """Least-squares slope of log(value) against log(size): the empirical cost exponent."""
    slope, _ = np.polyfit(np.log(sizes), np.log(values), 1)
    return float(slope)


def peak_traced_bytes(fn: Callable[[], Any]) -> int:
    """Peak bytes allocated through numpy and Python during ``fn()`` above what was allocated
    before (tracemalloc; the kernels allocate nothing themselves: their callers allocate every
    array in numpy)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def growth_size(n_events: int) -> str:
    """The size column of a growth row; :mod:`bench.goals` reads the event count back from it."""
    return f"{n_events:,} events"


def run_growth_rows(cfg: BenchConfig, results: Results) -> None:
    """Row 7: each kernel's time and peak memory as the recording grows 10k -> 10M events (1M in
    --quick) at the represent stream's event rate (500k events per 6 s: 10M events are 2 min), so
    the data look alike at every size (a filter keeps the same share), with the fitted exponents
    (1.0 = linear) on the largest size."""
    sizes = [10_000, 100_000, 1_000_000] if cfg.quick else [10_000, 100_000, 1_000_000, 10_000_000]
    times: dict[str, list[float]] = {k.label: [] for k in GROWTH_KERNELS}
    peaks: dict[str, list[int]] = {k.label: [] for k in GROWTH_KERNELS}
    for n in sizes:
        events = gesture_like_events(n, seed=1, duration_us=n * GESTURE_DURATION_US // 500_000)
        for kernel in GROWTH_KERNELS:
            elapsed = median_time(lambda k=kernel, ev=events: k.ours(ev), cfg)
            peak = peak_traced_bytes(lambda k=kernel, ev=events: k.ours(ev))
            times[kernel.label].append(elapsed)
            peaks[kernel.label].append(peak)
            results.rows.append(
                Row("growth", kernel.label, growth_size(n), elapsed, note=f"{elapsed / n * 1e9:.1f} ns/event")
            )
            results.rows.append(
                Row(
                    "growth",
                    f"{kernel.label}: peak memory",
                    growth_size(n),
                    peak,
                    note=f"{peak / n:.1f} B/event (input: {RECORD} B/event)",
                    unit="B",
                )
            )
        del events
    span = f"over {sizes[0]:,}-{sizes[-1]:,} events"
    for row in results.rows[-2 * len(GROWTH_KERNELS) :]:
        label = row.operation.removesuffix(": peak memory")
        series = peaks[label] if row.unit == "B" else times[label]
        row.note += f"; fitted exponent {fitted_exponent(sizes, series):.2f} {span}"
