"""Representations against tonic 1.7 (ToFrame, ToVoxelGrid, ToTimesurface) and direct definitions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import tonic.transforms as tt
import torch

from event_lightning.events.core import EVENT_DTYPE, EventFormatError, SensorSize, make_events
from event_lightning.events.represent.frames import frame_events, to_frame
from event_lightning.events.represent.frames_torch import to_frame_torch
from event_lightning.events.represent.histogram import stacked_histogram
from event_lightning.events.represent.slicing import FrameSlicing, _searchsorted, _slice_bounds
from event_lightning.events.represent.time_surfaces import time_surface
from event_lightning.events.represent.trace import (
    double_exponential_trace,
    double_exponential_weights,
    exponential_filter_taps,
)
from event_lightning.events.represent.voxel import voxel_grid

SENSOR = SensorSize(240, 180, 2)  # non-square: a W/H swap cannot go unnoticed
SMALL = SensorSize(37, 23, 2)  # non-square too; keeps sweeps with hundreds of frames cheap


def _stream(seed: int, n: int, sensor: SensorSize = SENSOR, duration: int = 100_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, duration, n))
    return make_events(
        rng.integers(0, sensor.width, n),
        rng.integers(0, sensor.height, n),
        t,
        rng.integers(0, sensor.polarities, n),
    )


def _frame_configs() -> list[dict]:
    configs = []
    for window, overlap, incomplete in itertools.product(
        [7_000, 10_000.5, 33_333], [0, 2_000, 1_500.5], [0, 1]
    ):
        configs.append(dict(time_window=window, overlap=overlap, include_incomplete=bool(incomplete)))
    for window, start, end in [
        (5_000, 0, 120_000),
        (5_000, 1_000, None),
        (8_000, None, 50_000),
        (7_000.0, -3_000, 9e4),
    ]:
        configs.append(dict(time_window=window, start_time=start, end_time=end))
    for count, overlap, incomplete in itertools.product([1, 7, 100, 5_000], [0, 3], [False, True]):
        if count > overlap:
            configs.append(dict(event_count=count, overlap=overlap, include_incomplete=incomplete))
    for bins, overlap in itertools.product([1, 3, 10], [0, 0.0, 0.25, 0.5, 0.9]):
        configs.append(dict(n_time_bins=bins, overlap=overlap))
        configs.append(dict(n_event_bins=bins, overlap=overlap))
    return configs


FRAME_CONFIGS = _frame_configs()


def _config_id(config: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in config.items())


@pytest.mark.parametrize("config", FRAME_CONFIGS, ids=_config_id)
def test_to_frame_equals_tonic(config: dict) -> None:
    cases = [(SMALL, seed, n) for seed, n in itertools.product(range(3), [1, 2, 13, 600])]
    for sensor, seed, n in [*cases, (SENSOR, 3, 150)]:
        events = _stream(seed, n, sensor)
        expected = tt.ToFrame(sensor_size=sensor.as_tonic(), **config)(events.copy())
        frames = to_frame(events, sensor, **config)
        assert frames.dtype == expected.dtype == np.int16
        assert frames.shape == expected.shape, (seed, n)
        np.testing.assert_array_equal(frames, expected)


def test_to_frame_counts_every_event_once_without_overlap() -> None:
    events = _stream(1, 5_000)
    frames = to_frame(events, SENSOR, event_count=1_000)
    assert frames.shape == (5, 2, 180, 240) and frames.sum() == 5_000
    # each frame holds exactly its 1000 consecutive events, at (p, y, x)
    first = events[:1_000]
    expected = np.zeros((2, 180, 240), dtype=np.int64)
    np.add.at(expected, (first["p"], first["y"], first["x"]), 1)
    np.testing.assert_array_equal(frames[0], expected)


@pytest.mark.parametrize(
    "config, n_frames",
    [
        (dict(time_window=1_000), 1),
        (dict(event_count=10), 1),
        (dict(n_time_bins=4), 4),
        (dict(n_event_bins=3), 3),
    ],
)
def test_to_frame_empty_stream(config: dict, n_frames: int) -> None:
    empty = np.zeros(0, dtype=EVENT_DTYPE)
    frames = to_frame(empty, SENSOR, **config)
    assert frames.shape == (n_frames, 2, 180, 240) and frames.dtype == np.int16 and not frames.any()
    # tonic agrees on the values and frame count but returns float64 (T, P, W, H): documented deviation
    expected = tt.ToFrame(sensor_size=SENSOR.as_tonic(), **config)(empty)
    assert expected.shape == (n_frames, 2, 240, 180) and not expected.any()


def test_to_frame_single_polarity_sensor() -> None:
    sensor = SensorSize(240, 180, 1)
    events = _stream(3, 400)
    events["p"] = 1
    for config in (dict(time_window=9_000), dict(n_event_bins=5)):
        expected = tt.ToFrame(sensor_size=sensor.as_tonic(), **config)(events.copy())
        np.testing.assert_array_equal(to_frame(events, sensor, **config), expected)
    assert (events["p"] == 1).all(), "the input must not be modified"
    mixed = _stream(3, 400)
    with pytest.raises(ValueError, match="single-polarity"):
        to_frame(mixed, sensor, time_window=9_000)
    with pytest.raises(ValueError):
        tt.ToFrame(sensor_size=sensor.as_tonic(), time_window=9_000)(mixed.copy())


def test_to_frame_needs_exactly_one_mode() -> None:
    events = _stream(0, 10)
    for kwargs in ({}, dict(time_window=1_000, n_time_bins=3)):
        with pytest.raises(ValueError, match="time_window, event_count, n_time_bins, n_event_bins"):
            to_frame(events, SENSOR, **kwargs)
    with pytest.raises(ValueError, match="overlap"):
        to_frame(events, SENSOR, time_window=1_000, overlap=1_000)


def test_to_frame_reads_fields_by_name_and_tonic_sensor_tuples() -> None:
    events = _stream(4, 300)
    tonic_dtype = np.dtype([("t", np.int64), ("x", np.int64), ("y", np.int64), ("p", bool)])
    foreign = np.empty(len(events), dtype=tonic_dtype)
    for name in "txyp":
        foreign[name] = events[name]
    expected = to_frame(events, SENSOR, n_time_bins=6)
    np.testing.assert_array_equal(to_frame(foreign, (240, 180, 2), n_time_bins=6), expected)


def test_to_frame_rejects_events_outside_the_sensor() -> None:
    events = _stream(0, 50)
    events["x"][7] = 240
    with pytest.raises(EventFormatError, match="x outside"):
        to_frame(events, SENSOR, time_window=1_000)


def test_to_frame_int16_wraps_like_tonic() -> None:
    n = 40_000
    events = make_events(np.full(n, 5), np.full(n, 3), np.arange(n), np.ones(n))
    expected = tt.ToFrame(sensor_size=SENSOR.as_tonic(), n_event_bins=1)(events.copy())
    frames = to_frame(events, SENSOR, n_event_bins=1)
    np.testing.assert_array_equal(frames, expected)
    assert frames[0, 1, 3, 5] == n - 65_536


def test_to_frame_overlapping_windows_and_int16_wraparound() -> None:
    events = _stream(2, 3_000, duration=400_000)
    config = dict(time_window=3_000, overlap=1_000, include_incomplete=True)
    expected = tt.ToFrame(sensor_size=SENSOR.as_tonic(), **config)(events.copy())
    np.testing.assert_array_equal(to_frame(events, SENSOR, **config), expected)
    # 70 000 events on one pixel: the int16 count wraps around like tonic's in-place np.add.at
    n = 70_000
    one_pixel = make_events(np.full(n, 3), np.full(n, 2), np.arange(n), np.ones(n, dtype=np.int8))
    frames = to_frame(one_pixel, SENSOR, n_time_bins=1)
    reference = tt.ToFrame(sensor_size=SENSOR.as_tonic(), n_time_bins=1)(one_pixel.copy())
    # the one bin spans [t_first, t_first + (t_last - t_first)): every event but the last
    assert frames[0, 1, 2, 3] == np.int16(n - 1 - 65536) == reference[0, 1, 2, 3]


# ------------------------------------------------------------------------------------------
# batched torch frames


def _flat_batch(streams: list[np.ndarray]) -> tuple[torch.Tensor, ...]:
    events = np.concatenate(streams)
    batch_index = np.repeat(np.arange(len(streams)), [len(s) for s in streams])
    return tuple(
        torch.from_numpy(np.asarray(a).astype(np.int64)) for a in (*(events[f] for f in "xytp"), batch_index)
    )


TORCH_CONFIGS = [c for i, c in enumerate(FRAME_CONFIGS) if i % 3 == 0] + [
    dict(time_window=7_000.0, start_time=-3_000, end_time=9e4),
    dict(n_time_bins=10, overlap=0.5),
]


@pytest.mark.parametrize("config", TORCH_CONFIGS, ids=_config_id)
def test_to_frame_torch_equals_to_frame_per_sample(config: dict) -> None:
    streams = [_stream(10 + i, n, SMALL) for i, n in enumerate([0, 1, 300, 900, 2])]
    frames = to_frame_torch(*_flat_batch(streams), SMALL, len(streams), **config)
    assert frames.dtype == torch.float32 and frames.shape[1:] == (5, 2, 23, 37)
    lengths = []
    for b, events in enumerate(streams):
        expected = to_frame(events, SMALL, **config)
        lengths.append(len(expected))
        got = frames[:, b].to(torch.int64).numpy()
        np.testing.assert_array_equal(got[: len(expected)], expected)
        assert not got[len(expected) :].any(), "padding frames must be zero"
    assert frames.shape[0] == max(lengths)


def test_to_frame_torch_fixed_frame_count_and_order_check() -> None:
    streams = [_stream(20, 500), _stream(21, 50)]
    tensors = _flat_batch(streams)
    frames = to_frame_torch(*tensors, SENSOR, 2, time_window=10_000, n_frames=4, dtype=torch.int16)
    assert frames.shape == (4, 2, 2, 180, 240) and frames.dtype == torch.int16
    np.testing.assert_array_equal(frames[:, 0].numpy(), to_frame(streams[0], SENSOR, time_window=10_000)[:4])
    x, y, t, p, b = tensors
    with pytest.raises(EventFormatError, match="sorted by t"):
        to_frame_torch(x, y, t.flip(0), p, b, SENSOR, 2, time_window=10_000)
    with pytest.raises(EventFormatError, match="batch_index"):
        to_frame_torch(x, y, t, p, b + 1, SENSOR, 2, time_window=10_000)


# ------------------------------------------------------------------------------------------
# voxel grid


def test_voxel_grid_equals_tonic() -> None:
    for seed, n, bins in itertools.product(range(3), [2, 3, 50, 2_000], [1, 4, 10]):
        events = _stream(seed, n)
        expected = tt.ToVoxelGrid(SENSOR.as_tonic(), bins)(events.copy())
        grid = voxel_grid(events, SENSOR, bins)
        assert grid.shape == expected.shape == (bins, 1, 180, 240) and grid.dtype == expected.dtype
        np.testing.assert_array_equal(grid, expected)


def test_voxel_grid_bool_polarity_is_signed() -> None:
    events = _stream(5, 1_000)
    events["p"][: len(events) // 2] = 0  # clearly more OFF than ON events
    bool_events = np.empty(
        len(events), dtype=[("x", np.int16), ("y", np.int16), ("p", bool), ("t", np.int64)]
    )
    for name in "xypt":
        bool_events[name] = events[name]
    ours = voxel_grid(bool_events, SENSOR, 5)
    np.testing.assert_array_equal(ours, voxel_grid(events, SENSOR, 5))
    # direct sum of the bilinear weights, signed
    tau = 5 * (events["t"] - events["t"][0]) / (events["t"][-1] - events["t"][0])
    bins, frac = np.floor(tau), tau - np.floor(tau)
    weight = (1 - frac) * (bins < 5) + frac * (bins + 1 < 5)
    sign = np.where(events["p"] == 1, 1.0, -1.0)
    assert ours.sum() == pytest.approx((sign * weight).sum()) and ours.sum() < -100
    # tonic's in-place 0 -> -1 on a bool column stores True: every event counts positive
    assert tt.ToVoxelGrid(SENSOR.as_tonic(), 5)(bool_events.copy()).sum() == pytest.approx(weight.sum())


def test_voxel_grid_degenerate_streams() -> None:
    assert not voxel_grid(np.zeros(0, dtype=EVENT_DTYPE), SENSOR, 3).any()
    single = make_events([4], [7], [123], [0])
    grid = voxel_grid(single, SENSOR, 3)
    assert grid[0, 0, 7, 4] == -1 and np.count_nonzero(grid) == 1


# ------------------------------------------------------------------------------------------
# stacked histogram


def _histogram_reference(events: np.ndarray, sensor: SensorSize, n_bins: int) -> np.ndarray:
    hist = np.zeros((n_bins, *sensor.frame_shape))
    t = events["t"].astype(float)
    span = max(t[-1] - t[0], 1.0)
    for event, ti in zip(events, t, strict=True):
        b = min(int(np.floor(n_bins * (ti - t[0]) / span)), n_bins - 1)
        hist[b, event["p"], event["y"], event["x"]] += 1
    return hist


def test_stacked_histogram_last_events_and_layouts() -> None:
    sensor = SensorSize(34, 26, 2)
    events = _stream(6, 900, sensor)
    reference_time = int(events["t"][700])
    selected = events[events["t"] < reference_time][-300:]
    expected = _histogram_reference(selected, sensor, 10)
    hist = stacked_histogram(events, sensor, 10, event_count=300, end_time=reference_time)
    assert hist.shape == (10, 2, 26, 34) and hist.dtype == np.float32
    np.testing.assert_array_equal(hist, expected)
    assert hist.sum() == 300
    pose_input = stacked_histogram(
        events, sensor, 10, event_count=300, end_time=reference_time, channel_order="polarity_major"
    )
    assert pose_input.shape == (20, 26, 34)
    np.testing.assert_array_equal(pose_input[:10], expected[:, 0])  # channels 0-9: polarity 0
    np.testing.assert_array_equal(pose_input[10:], expected[:, 1])
    rvt = stacked_histogram(
        events, sensor, 10, event_count=300, end_time=reference_time, channel_order="bin_major"
    )
    np.testing.assert_array_equal(rvt[1::2], expected[:, 1])
    clipped = stacked_histogram(events, sensor, 2, count_cutoff=1)
    assert clipped.max() == 1 and clipped.sum() == np.count_nonzero(_histogram_reference(events, sensor, 2))


def test_stacked_histogram_time_window() -> None:
    events = _stream(7, 500)
    start, end = 20_000, 60_000
    inside = events[(events["t"] >= start) & (events["t"] < end)]
    hist = stacked_histogram(events, SENSOR, 4, start_time=start, end_time=end)
    np.testing.assert_array_equal(hist, _histogram_reference(inside, SENSOR, 4))


# ------------------------------------------------------------------------------------------
# time surfaces


def test_time_surface_equals_tonic() -> None:
    cases = [(SMALL, seed, n) for seed, n in itertools.product(range(3), [1, 2, 60, 1_500])]
    for sensor, seed, n in [*cases, (SENSOR, 3, 500)]:
        events = _stream(seed, n, sensor)
        for dt, tau in [(5_000, 3_000.0), (7_777, 10_000), (2_500.5, 500)]:
            expected = tt.ToTimesurface(sensor.as_tonic(), dt, tau)(events.copy())
            surfaces = time_surface(events, sensor, tau=tau, dt=dt)
            assert surfaces.shape == expected.shape
            np.testing.assert_array_equal(surfaces, expected)


def test_float_windows_that_round_into_each_other() -> None:
    """With a 0.1 µs window, k·0.1 and (k−1)·0.1 + 0.1 differ by an ulp: windows overlap by one event."""
    sensor = SensorSize(3, 2, 2)
    rng = np.random.default_rng(0)
    events = make_events(
        rng.integers(0, 3, 41), rng.integers(0, 2, 41), np.arange(41), rng.integers(0, 2, 41)
    )
    starts, ends = _slice_bounds(events["t"], FrameSlicing(time_window=0.1))
    assert (starts[1:] < ends[:-1]).any()
    expected = tt.ToTimesurface(sensor.as_tonic(), 0.1, 5.0)(events.copy())
    np.testing.assert_array_equal(time_surface(events, sensor, dt=0.1, tau=5.0), expected)
    expected = tt.ToFrame(sensor_size=sensor.as_tonic(), time_window=0.1)(events.copy())
    np.testing.assert_array_equal(to_frame(events, sensor, time_window=0.1), expected)


def test_time_surface_at_sample_times() -> None:
    sensor = SensorSize(9, 7, 2)
    events = _stream(8, 200, sensor, duration=10_000)
    times = np.array([0, 10, 2_500, 2_500, 7_000, 20_000])
    surfaces = time_surface(events, sensor, tau=1_500.0, sample_times=times)
    assert surfaces.shape == (6, 2, 7, 9)
    for k, s in enumerate(times):
        expected = np.zeros(sensor.frame_shape)
        for p, y, x in itertools.product(range(2), range(7), range(9)):
            at = (events["p"] == p) & (events["y"] == y) & (events["x"] == x) & (events["t"] < s)
            if at.any():
                expected[p, y, x] = np.exp(-(s - events["t"][at].max()) / 1_500.0)
        np.testing.assert_allclose(surfaces[k], expected, rtol=1e-12, atol=0)


# ------------------------------------------------------------------------------------------
# double exponential trace (hgvae reconstruction target)


def _cascaded_filter_reference(frames: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """The original pipeline: two conv1d's with flipped, sum-normalised exp kernels, padding = taps."""
    signal = frames.reshape(frames.shape[0], -1).T[:, None, :].double()  # [pixels, 1, T]
    for decay in (beta, alpha):
        tau = 1 / (1 - decay)
        taps = int(6 * tau)
        kernel = torch.exp(-torch.arange(taps, dtype=torch.float64) / tau)
        kernel = torch.flip(kernel / kernel.sum(), [0])[None, None, :]
        signal = torch.nn.functional.conv1d(signal, kernel, padding=taps)
    return 50 * signal[:, 0, frames.shape[0]].reshape(frames.shape[1:])


def test_double_exponential_impulse_responses() -> None:
    weights = double_exponential_weights(200, alpha=0.99, beta=0.97)  # gestures: taps 199 and 599
    for t, value in [(0, 0.10), (100, 0.24), (150, 0.29), (190, 0.11)]:
        assert weights[t] == pytest.approx(value, abs=0.006), t
    assert weights[199] == 0
    assert weights.sum() == pytest.approx(40, abs=0.2)
    lights = double_exponential_weights(200, alpha=0.97, beta=0.92)  # taps 75 and 199
    for t, value in [(0, 0.006), (150, 0.51), (190, 0.67)]:
        assert lights[t] == pytest.approx(value, abs=0.006), t
    assert lights.sum() == pytest.approx(50, abs=0.2)
    assert exponential_filter_taps(0.99) == 599 and exponential_filter_taps(0.92) == 75


def test_double_exponential_trace_equals_cascaded_filters() -> None:
    rng = np.random.default_rng(9)
    frames = torch.from_numpy(rng.poisson(0.3, size=(200, 2, 1, 1, 3)).astype(np.float32))
    expected = _cascaded_filter_reference(frames, 0.99, 0.97)
    trace = double_exponential_trace(frames, alpha=0.99, beta=0.97)
    assert trace.shape == (2, 1, 1, 3) and trace.dtype == torch.float32
    torch.testing.assert_close(trace.double(), expected, rtol=1e-5, atol=1e-5)
    batch_first = double_exponential_trace(frames.numpy().swapaxes(0, 1), alpha=0.99, beta=0.97, time_dim=1)
    np.testing.assert_allclose(batch_first, expected.numpy(), rtol=1e-5, atol=1e-5)
    for t in (0, 100, 150, 190, 199):  # impulse at t reads back the weight of step t
        impulse = torch.zeros(200, 1)
        impulse[t] = 1
        assert double_exponential_trace(impulse, alpha=0.99, beta=0.97)[0] == pytest.approx(
            float(_cascaded_filter_reference(impulse, 0.99, 0.97)[0]), abs=1e-6
        )


def test_strided_bisection_equals_numpy_searchsorted() -> None:
    rng = np.random.default_rng(5)
    events = make_events(
        np.zeros(5000), np.zeros(5000), np.sort(rng.integers(0, 3000, 5000)), np.zeros(5000, dtype=np.int8)
    )
    t = events["t"]  # a strided view, with many equal times
    assert not t.flags.c_contiguous
    for values in (
        np.array([-5, 0, 1, 2999, 3000, 10**9]),
        rng.integers(-10, 3010, 40),
        rng.uniform(-10, 3010, 40),  # float boundaries, as tonic's float window arithmetic gives
    ):
        np.testing.assert_array_equal(_searchsorted(t, values), np.searchsorted(np.asarray(t), values))


@pytest.mark.parametrize("config", FRAME_CONFIGS[:6], ids=_config_id)
def test_frame_events_of_checked_events_equals_to_frame(config: dict) -> None:
    events = _stream(11, 4000)
    slicing = FrameSlicing(**config)
    expected = to_frame(events, SENSOR, **config)
    for checked in (False, True):
        assert np.array_equal(frame_events(events, SENSOR, slicing, checked=checked), expected)
    bad = events.copy()
    bad["y"][7] = SENSOR.height
    with pytest.raises(EventFormatError, match="y outside"):
        frame_events(bad, SENSOR, slicing)  # unchecked input is validated
