"""Rows 1 and 7: event representations and filters against tonic 1.7, and cost growth of to_frame."""

from __future__ import annotations

import numpy as np

from bench.measure import BenchConfig, median_time, paired_times
from bench.results import Results, Row, Skipped
from event_lightning.events.augment import denoise, downsample
from event_lightning.events.core import EVENT_DTYPE, SensorSize
from event_lightning.events.represent.frames import to_frame
from event_lightning.events.represent.voxel import voxel_grid

GESTURE_SENSOR = SensorSize(128, 128, 2)
GESTURE_DURATION_US = 6_000_000


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


def _agree(ok: bool) -> str:
    return "identical" if ok else "DIFFERENT"


def run_representation_rows(cfg: BenchConfig, results: Results, n_events: int = 500_000) -> None:
    """Row 1: to_frame (every mode), voxel grid, denoise, downsample vs tonic on 500k events / 6 s
    (``n_events`` smaller only for the smoke test)."""
    try:
        import tonic.transforms as tt
    except ImportError as error:  # pragma: no cover - tonic is a benchmark-only peer
        results.skipped.append(Skipped("represent", "all", f"tonic not importable: {error}"))
        return
    events = gesture_like_events(n_events)
    size = f"{n_events // 1000}k ev, 6 s, 128x128"
    sensor = GESTURE_SENSOR.as_tonic()
    frame_modes = [
        ("to_frame(time_window=10 ms)", {"time_window": 10_000}),
        ("to_frame(event_count=5000)", {"event_count": 5000}),
        ("to_frame(n_time_bins=16)", {"n_time_bins": 16}),
        ("to_frame(n_event_bins=16)", {"n_event_bins": 16}),
        ("to_frame(n_time_bins=16, overlap=0.5)", {"n_time_bins": 16, "overlap": 0.5}),
    ]
    for label, kwargs in frame_modes:
        peer = tt.ToFrame(sensor_size=sensor, **kwargs)
        ours_out, peer_out = to_frame(events, GESTURE_SENSOR, **kwargs), peer(events)
        ok = ours_out.shape == peer_out.shape and np.array_equal(ours_out, peer_out)
        ours_t, peer_t = paired_times(
            lambda kw=kwargs: to_frame(events, GESTURE_SENSOR, **kw), lambda f=peer: f(events), cfg
        )
        results.rows.append(
            Row(
                "represent",
                label,
                size,
                ours_t,
                "tonic ToFrame",
                peer_t,
                _agree(ok),
                f"{ours_out.shape[0]} frames",
            )
        )

    peer_voxel = tt.ToVoxelGrid(sensor_size=sensor, n_time_bins=16)
    ok = np.array_equal(voxel_grid(events, GESTURE_SENSOR, 16), peer_voxel(events))
    ours_t, peer_t = paired_times(
        lambda: voxel_grid(events, GESTURE_SENSOR, 16), lambda: peer_voxel(events), cfg
    )
    results.rows.append(
        Row(
            "represent",
            "voxel_grid(16 bins)",
            size,
            ours_t,
            "tonic ToVoxelGrid",
            peer_t,
            _agree(ok),
        )
    )

    # tonic's Denoise is a per-event Python loop (~1.4 s at 500k): fewer repeats keep --quick short.
    peer_denoise = tt.Denoise(filter_time=10_000)
    ok = _same_events(denoise(events, 10_000), peer_denoise(events))
    peer_repeats = 1 if cfg.quick else 3
    ours_t, peer_t = paired_times(
        lambda: denoise(events, 10_000), lambda: peer_denoise(events), cfg, peer_repeats=peer_repeats
    )
    results.rows.append(
        Row(
            "represent",
            "denoise(filter_time=10 ms)",
            size,
            ours_t,
            "tonic Denoise",
            peer_t,
            _agree(ok),
            f"peer: median of {peer_repeats}, no warm-up",
        )
    )

    peer_down = tt.Downsample(spatial_factor=0.5, time_factor=0.001)
    ours_down, _ = downsample(events, GESTURE_SENSOR, spatial_factor=0.5, time_factor=0.001)
    ok = _same_events(ours_down, peer_down(events))
    ours_t, peer_t = paired_times(
        lambda: downsample(events, GESTURE_SENSOR, spatial_factor=0.5, time_factor=0.001),
        lambda: peer_down(events),
        cfg,
    )
    results.rows.append(
        Row(
            "represent",
            "downsample(spatial 0.5, time 0.001)",
            size,
            ours_t,
            "tonic Downsample",
            peer_t,
            _agree(ok),
        )
    )


def fitted_exponent(sizes: list[int], times: list[float]) -> float:
    """Least-squares slope of log(time) against log(size): the empirical cost exponent."""
    slope, _ = np.polyfit(np.log(sizes), np.log(times), 1)
    return float(slope)


def run_growth_rows(cfg: BenchConfig, results: Results) -> None:
    """Row 7: to_frame(n_time_bins=16) time as the events per sample grow 10k -> 10M (1M in --quick)."""
    sizes = [10_000, 100_000, 1_000_000] if cfg.quick else [10_000, 100_000, 1_000_000, 10_000_000]
    times = []
    for n in sizes:
        events = gesture_like_events(n, seed=1)
        elapsed = median_time(lambda ev=events: to_frame(ev, GESTURE_SENSOR, n_time_bins=16), cfg)
        times.append(elapsed)
        results.rows.append(
            Row(
                "growth",
                "to_frame(n_time_bins=16)",
                f"{n:,} ev",
                elapsed,
                note=f"{elapsed / n * 1e9:.1f} ns/event",
            )
        )
        del events
    exponent = fitted_exponent(sizes, times)
    results.rows[-1].note += f"; fitted exponent {exponent:.2f} over {sizes[0]:,}-{sizes[-1]:,} events"
