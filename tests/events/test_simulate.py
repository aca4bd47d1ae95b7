"""The event-camera simulator: polarity, counts, crossing times, refractory period, noise, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from event_lightning.events.core import EVENT_DTYPE, SensorSize, validate
from event_lightning.events.simulate import SimulatorConfig, simulate_events

EXACT = SimulatorConfig(threshold_sigma=0.0, noise_rate_hz=0.0)


def _log_ramp(start: float, end: float, n_frames: int, eps: float) -> np.ndarray:
    """Intensities whose log(I + eps) moves linearly from log(start + eps) to log(end + eps)."""
    return np.exp(np.linspace(math.log(start + eps), math.log(end + eps), n_frames)) - eps


def _reference_simulator(frames: np.ndarray, times: np.ndarray, config: SimulatorConfig) -> np.ndarray:
    """Pixel-by-pixel, crossing-by-crossing restatement of the model (no mismatch, no noise)."""
    n, height, width = frames.shape
    log = np.log(frames.astype(np.float32) + np.float32(config.log_eps)).astype(np.float64)
    rows = []
    for y in range(height):
        for x in range(width):
            ref, last = log[0, y, x], None
            for k in range(n - 1):
                l0, l1, t0, t1 = log[k, y, x], log[k + 1, y, x], int(times[k]), int(times[k + 1])
                delta = l1 - ref
                sign = 1 if delta > 0 else -1
                c = config.pos_threshold if sign > 0 else config.neg_threshold
                crossings = math.floor(abs(delta) / c + 1e-5)
                emitted = 0
                for j in range(1, crossings + 1):
                    level = ref + sign * j * c
                    frac = (level - l0) / (l1 - l0) if sign * (level - l0) > 0 and l1 != l0 else 0.0
                    t = t0 + math.floor(min(max(frac, 0.0), 1.0) * (t1 - t0))
                    if config.refractory_us and last is not None and t < last + config.refractory_us:
                        continue
                    rows.append((x, y, t, int(sign > 0)))
                    emitted += 1
                    last = t
                ref += sign * emitted * c
    events = np.array(rows, dtype=[("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.int64)])
    events = events[np.lexsort((events["p"], events["x"], events["y"], events["t"]))]
    return events


def _fields(events: np.ndarray) -> np.ndarray:
    return np.stack([events[f].astype(np.int64) for f in ("x", "y", "t", "p")], axis=1)


@pytest.mark.parametrize(("start", "end", "polarity"), [(0.1, 0.9, 1), (0.9, 0.1, 0)])
def test_brightening_gives_on_darkening_gives_off(start: float, end: float, polarity: int) -> None:
    frames = _log_ramp(start, end, 11, EXACT.log_eps)[:, None, None]
    times = np.arange(11) * 1000
    events = simulate_events(frames, times, EXACT)
    expected = math.floor(abs(math.log((end + EXACT.log_eps) / (start + EXACT.log_eps))) / 0.2)
    assert len(events) == expected == 10
    assert set(events["p"].tolist()) == {polarity}
    assert events.dtype == EVENT_DTYPE
    assert (np.diff(events["t"]) >= 0).all()
    assert events["t"].min() >= 0 and events["t"].max() <= 10_000


def test_crossing_times_are_interpolated_linearly() -> None:
    # log intensity rises linearly at 0.5 log units per ms: crossing k of C=0.2 is at k * 400 µs.
    eps = EXACT.log_eps
    n = 6
    log_values = math.log(0.05 + eps) + 0.5 * np.arange(n)
    frames = (np.exp(log_values) - eps)[:, None, None]
    events = simulate_events(frames, np.arange(n) * 1000, EXACT)
    k = np.arange(1, len(events) + 1)
    assert len(events) == math.floor(0.5 * (n - 1) / 0.2 + 1e-9) == 12
    np.testing.assert_allclose(events["t"], np.floor(k * 400.0), atol=1)


@pytest.mark.parametrize("threshold", [0.1, 0.2, 0.35])
@pytest.mark.parametrize("contrast", [2.0, 4.0, 8.0])
def test_counts_scale_with_log_contrast_over_threshold(contrast: float, threshold: float) -> None:
    config = SimulatorConfig(pos_threshold=threshold, neg_threshold=threshold, threshold_sigma=0.0)
    low = 0.1
    up = _log_ramp(low, low * contrast - config.log_eps * (1 - contrast), 6, config.log_eps)
    frames = np.stack([up, up[::-1]], axis=1)[:, None, :]  # pixel 0 brightens, pixel 1 darkens
    events = simulate_events(frames, np.arange(6) * 500, config)
    expected = math.floor(math.log(contrast) / threshold + 1e-9)
    on, off = events[events["x"] == 0], events[events["x"] == 1]
    assert len(on) == expected and (on["p"] == 1).all()
    assert len(off) == expected and (off["p"] == 0).all()


def test_threshold_mismatch_spreads_counts_around_the_nominal() -> None:
    config = SimulatorConfig(threshold_sigma=0.03)
    ramp = _log_ramp(0.05, 0.95, 30, config.log_eps)
    frames = np.broadcast_to(ramp[:, None, None], (30, 40, 40))
    events = simulate_events(frames, np.arange(30) * 1000, config, np.random.default_rng(3))
    counts = np.bincount(events["y"].astype(int) * 40 + events["x"], minlength=1600)
    nominal = math.log(0.951 / 0.051) / 0.2
    assert counts.std() > 0.3  # pixels differ
    assert abs(counts.mean() - nominal) < 0.5  # floor() removes ~0.5 on average
    assert (events["p"] == 1).all()


def test_vectorised_simulator_matches_pixelwise_reference() -> None:
    rng = np.random.default_rng(7)
    n, height, width = 25, 6, 7
    # Smooth random brightness paths in [0.02, 1].
    walk = np.cumsum(rng.normal(0, 0.25, size=(n, height, width)), axis=0)
    frames = 0.02 + 0.98 * (0.5 + 0.5 * np.tanh(walk))
    times = np.cumsum(rng.integers(200, 2000, size=n))
    for config in (EXACT, SimulatorConfig(threshold_sigma=0.0, refractory_us=700, pos_threshold=0.15)):
        ours = simulate_events(frames, times, config)
        reference = _reference_simulator(frames, times, config)
        assert len(ours) > 50
        np.testing.assert_array_equal(_fields(ours), _fields(reference))


def test_refractory_period_is_enforced_and_keeps_the_change() -> None:
    # A step of ~6 thresholds in the first frame interval, then constant brightness.
    config = SimulatorConfig(threshold_sigma=0.0, refractory_us=2500)
    level = np.full(20, 0.1 * math.exp(1.25))
    level[0] = 0.1
    frames = level[:, None, None]
    times = np.arange(20) * 1000
    events = simulate_events(frames, times, config)
    without = simulate_events(frames, times, EXACT)
    assert len(without) == math.floor(math.log((level[1] + 1e-3) / (0.1 + 1e-3)) / 0.2) == 6
    # Without refractory all six arrive in the first millisecond; with it they are spread out
    # at least 2.5 ms apart, and none is lost because the reference only moves when firing.
    assert without["t"].max() <= 1000
    assert len(events) == len(without)
    assert (np.diff(events["t"]) >= 2500).all()
    assert (events["p"] == 1).all()


def test_refractory_on_moving_texture_drops_events_and_respects_gaps() -> None:
    rng = np.random.default_rng(1)
    frames = rng.uniform(0.05, 1.0, size=(40, 8, 8))
    times = np.arange(40) * 300
    config = SimulatorConfig(refractory_us=1000, threshold_sigma=0.02)
    events = simulate_events(frames, times, config, np.random.default_rng(0))
    free = simulate_events(frames, times, SimulatorConfig(threshold_sigma=0.02), np.random.default_rng(0))
    assert 0 < len(events) < len(free)
    pixel = events["y"].astype(np.int64) * 8 + events["x"]
    order = np.lexsort((events["t"], pixel))
    same_pixel = np.diff(pixel[order]) == 0
    gaps = np.diff(events["t"][order])[same_pixel]
    assert gaps.min() >= 1000


def test_background_noise_rate_matches() -> None:
    rate, seconds, side = 5.0, 2.0, 40
    frames = np.full((2, side, side), 0.5)
    events = simulate_events(
        frames,
        np.array([0, int(seconds * 1e6)]),
        SimulatorConfig(noise_rate_hz=rate),
        np.random.default_rng(11),
    )
    expected = rate * seconds * side * side  # 16000; Poisson sd ~126
    assert abs(len(events) - expected) < 5 * math.sqrt(expected)
    assert abs(events["p"].mean() - 0.5) < 0.02
    assert abs(np.median(events["t"]) - seconds * 1e6 / 2) < 0.03 * seconds * 1e6
    validate(events, SensorSize(side, side, 2))


def test_moving_bright_bar_leads_with_on_and_trails_with_off() -> None:
    width, n = 30, 21
    xs = np.arange(width)
    frames = np.stack([np.where(np.abs(xs - (5 + k)) <= 2, 0.9, 0.1) for k in range(n)])[:, None, :]
    events = simulate_events(frames.astype(float), np.arange(n) * 1000, EXACT)
    for k in range(1, n):
        in_step = events[(events["t"] >= (k - 1) * 1000) & (events["t"] < k * 1000)]
        centre = 5 + k - 0.5
        assert (in_step["x"][in_step["p"] == 1] > centre).all()
        assert (in_step["x"][in_step["p"] == 0] < centre).all()


def test_output_is_sorted_with_deterministic_ties_and_reproducible() -> None:
    rng = np.random.default_rng(5)
    frames = rng.uniform(0.0, 1.0, size=(6, 10, 12))
    times = np.arange(6) * 10  # 10 µs frames: many events share a timestamp
    config = SimulatorConfig(noise_rate_hz=1000.0)
    a = simulate_events(frames, times, config, np.random.default_rng(2))
    b = simulate_events(frames, times, config, np.random.default_rng(2))
    c = simulate_events(frames, times, config, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert len(a) != len(c) or not np.array_equal(a, c)
    keys = np.stack([a["t"], a["y"], a["x"], a["p"]], axis=1).astype(np.int64)
    order = np.lexsort(keys.T[::-1])
    np.testing.assert_array_equal(order, np.arange(len(a)))
    validate(a, SensorSize(12, 10, 2))


def test_single_frame_and_static_scene_give_no_events() -> None:
    assert len(simulate_events(np.full((1, 4, 4), 0.3), np.array([0]), EXACT)) == 0
    assert len(simulate_events(np.full((5, 4, 4), 0.3), np.arange(5) * 100, EXACT)) == 0


@pytest.mark.parametrize(
    ("frames", "times", "message"),
    [
        (np.zeros((3, 4)), np.arange(3), "shape \\[N, H, W\\]"),
        (np.zeros((3, 4, 4)), np.arange(4), "timestamps_us must have shape"),
        (np.zeros((3, 4, 4)), np.array([0, 5, 5]), "strictly increasing"),
        (np.full((3, 4, 4), 1.5), np.arange(3), "intensities in \\[0, 1\\]"),
        (np.full((3, 4, 4), np.nan), np.arange(3), "NaN"),
        (np.zeros((3, 4, 4)), np.array([0.0, 1.5, 3.0]), "whole microseconds"),
    ],
)
def test_bad_input_is_rejected_clearly(frames: np.ndarray, times: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        simulate_events(frames, times, EXACT)


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="pos_threshold"):
        SimulatorConfig(pos_threshold=0.0)
    with pytest.raises(ValueError, match="refractory_us"):
        SimulatorConfig(refractory_us=-1)
