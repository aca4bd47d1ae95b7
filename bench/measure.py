"""How the benchmarks measure: the repeat settings, the timers, and the machine they ran on."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BenchConfig:
    """How hard to measure: warm-up calls, timed repeats, and whether this is the quick pass."""

    quick: bool = False
    warmup: int = 1
    repeats: int = 5
    methods: tuple[str, ...] = ()
    """Group ``reference`` only: run the methods whose name contains one of these (case-insensitive); all if empty."""

    @classmethod
    def make(cls, quick: bool) -> BenchConfig:
        return cls(quick=True, warmup=1, repeats=3) if quick else cls(quick=False, warmup=2, repeats=7)


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


def machine_description() -> str:
    import numpy as np
    import torch

    gpu = "CUDA available" if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.platform()}, {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
        f"{gpu}; Python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, "
        f"torch threads {torch.get_num_threads()}"
    )
