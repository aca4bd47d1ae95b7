"""The event kernels against tonic 1.7 on randomised streams, on both implementations (conftest):
every slicing mode of to_frame with random options, voxel grids, denoise, refractory period and
downsample; empty, one-event, strided and read-only inputs."""

from __future__ import annotations

import numpy as np
import pytest
import tonic.transforms as tt

from event_lightning.events.augment import denoise, downsample, refractory_period
from event_lightning.events.core import EVENT_DTYPE, SensorSize, make_events
from event_lightning.events.represent import voxel as voxel_module
from event_lightning.events.represent.frames import to_frame
from event_lightning.events.represent.slicing import FRAME_MODES, _searchsorted
from event_lightning.events.represent.voxel import voxel_grid

SENSORS = (SensorSize(37, 23, 2), SensorSize(5, 9, 2), SensorSize(64, 48, 1))


def random_stream(rng: np.random.Generator, sensor: SensorSize, n: int | None = None) -> np.ndarray:
    """Sorted events with many repeated timestamps (few distinct times) or few (long spans)."""
    n = int(rng.choice([1, 2, 3, 17, 300, 2_000])) if n is None else n
    span = int(rng.choice([1, 50, 10_000, 3_000_000]))
    t = np.sort(rng.integers(0, span, n)) + int(rng.integers(0, 10**6))
    p = np.full(n, rng.integers(0, 2)) if sensor.polarities == 1 else rng.integers(0, 2, n)
    return make_events(rng.integers(0, sensor.width, n), rng.integers(0, sensor.height, n), t, p)


def random_slicing(rng: np.random.Generator, events: np.ndarray) -> dict:
    """Options of one randomly chosen mode, scaled to the stream (integers and floats)."""
    n, span = len(events), int(events["t"][-1] - events["t"][0])
    mode = FRAME_MODES[int(rng.integers(0, 4))]
    if mode == "time_window":
        window = float(rng.uniform(0.5, 1.5) * max(span, 1) / rng.choice([1, 3, 40]))
        window = round(window) if rng.random() < 0.5 and window >= 1 else window
        options = dict(time_window=window, overlap=float(rng.choice([0, 0.3, 0.75])) * window)
        options["include_incomplete"] = bool(rng.random() < 0.5)
        if rng.random() < 0.3:
            options["start_time"] = int(events["t"][0] - rng.integers(-span // 2 - 1, span // 2 + 2))
        if rng.random() < 0.3:
            options["end_time"] = int(events["t"][-1] + rng.integers(-span // 2 - 1, span // 2 + 2))
        return options
    if mode == "event_count":
        count = int(rng.integers(1, n + 5))
        overlap = int(rng.integers(0, count)) if rng.random() < 0.5 else 0
        return dict(event_count=count, overlap=overlap, include_incomplete=bool(rng.random() < 0.5))
    bins = int(rng.integers(1, 20))
    return {mode: bins, "overlap": float(rng.choice([0, 0.25, 0.5, 0.9, rng.uniform(0, 1)]))}


@pytest.mark.parametrize("seed", range(6))
def test_to_frame_on_random_streams_and_options_equals_tonic(seed: int) -> None:
    rng = np.random.default_rng(seed)
    modes_seen = set()
    for _ in range(40):
        sensor = SENSORS[int(rng.integers(0, len(SENSORS)))]
        events = random_stream(rng, sensor)
        options = random_slicing(rng, events)
        modes_seen.add(next(mode for mode in FRAME_MODES if mode in options))
        expected = tt.ToFrame(sensor_size=sensor.as_tonic(), **options)(events.copy())
        frames = to_frame(events, sensor, **options)
        assert frames.dtype == np.int16 and frames.shape == expected.shape, options
        np.testing.assert_array_equal(frames, expected, err_msg=str(options))
    assert modes_seen == set(FRAME_MODES)


@pytest.mark.parametrize(
    "options",
    [
        dict(time_window=1_000),
        dict(time_window=1_000, overlap=500, include_incomplete=True),
        dict(time_window=1_000, start_time=0, end_time=5_000),
        dict(event_count=1),
        dict(event_count=4, overlap=3, include_incomplete=True),
        dict(n_time_bins=3),
        dict(n_time_bins=3, overlap=0.5),
        dict(n_event_bins=2, overlap=0.5),
    ],
)
def test_to_frame_of_empty_and_one_event_streams(options: dict) -> None:
    sensor = SensorSize(7, 5, 2)
    empty = to_frame(np.zeros(0, dtype=EVENT_DTYPE), sensor, **options)
    n_frames = options.get("n_time_bins", options.get("n_event_bins", 1))
    assert empty.shape == (n_frames, 2, 5, 7) and empty.dtype == np.int16 and not empty.any()
    one = make_events([6], [4], [2_000], [1])
    expected = tt.ToFrame(sensor_size=sensor.as_tonic(), **options)(one.copy())
    np.testing.assert_array_equal(to_frame(one, sensor, **options), expected)


def test_to_frame_of_strided_and_read_only_records_equals_a_contiguous_copy(tmp_path) -> None:
    rng = np.random.default_rng(7)
    sensor = SENSORS[0]
    events = random_stream(rng, sensor, n=3_000)
    path = tmp_path / "events.npy"
    np.save(path, events)
    mapped = np.load(path, mmap_mode="r")  # read-only records in a file
    assert not mapped.flags.writeable
    for options in (dict(time_window=2_500.5, overlap=700), dict(n_event_bins=7, overlap=0.5), dict(event_count=100)):
        np.testing.assert_array_equal(to_frame(mapped, sensor, **options), to_frame(events, sensor, **options))
        strided = events[1::3]
        np.testing.assert_array_equal(to_frame(strided, sensor, **options), to_frame(strided.copy(), sensor, **options))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("kept", [None, 0, 5])
def test_voxel_grid_on_random_streams_equals_tonic_bit_for_bit(seed: int, kept: int | None, monkeypatch) -> None:
    """``kept``: how many right parts per bin the compiled pass keeps (None: as shipped); with 0 or
    5, the runs' other right parts take the recomputing path."""
    if kept is not None:
        monkeypatch.setattr(voxel_module, "_RUN_KEPT", kept)
    rng = np.random.default_rng(100 + seed)
    for _ in range(15):
        sensor = SENSORS[int(rng.integers(0, 2))]  # two polarities
        events = random_stream(rng, sensor, n=int(rng.choice([2, 40, 3_000])))
        if events["t"][-1] == events["t"][0]:
            continue  # tonic divides by a zero span; the documented difference is tested elsewhere
        bins = int(rng.choice([1, 2, 7, 16, 300]))
        expected = tt.ToVoxelGrid(sensor.as_tonic(), bins)(events.copy())
        if rng.random() < 0.5:  # read-only records, as a memory-mapped file gives
            events = events.view()
            events.flags.writeable = False
        grid = voxel_grid(events, sensor, bins)
        np.testing.assert_array_equal(grid.view(np.uint64), expected.view(np.uint64))


@pytest.mark.parametrize("seed", range(3))
def test_filters_on_random_streams_equal_tonic(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    for _ in range(12):
        sensor = SENSORS[int(rng.integers(0, len(SENSORS)))]
        events = random_stream(rng, sensor)
        filter_time = float(rng.choice([0, 0.5, 1, 37, 5_000, 123.25]))
        np.testing.assert_array_equal(denoise(events, filter_time), tt.Denoise(filter_time)(events.copy()))
        delta = float(rng.choice([0, 1, 37, 5_000, 123.25]))
        np.testing.assert_array_equal(refractory_period(events, delta), tt.RefractoryPeriod(delta)(events.copy()))


def test_filters_of_strided_and_read_only_records(tmp_path) -> None:
    rng = np.random.default_rng(9)
    events = random_stream(rng, SENSORS[1], n=2_000)
    np.save(tmp_path / "events.npy", events)
    mapped = np.load(tmp_path / "events.npy", mmap_mode="r")
    strided = events[::2]
    for fn in (
        lambda ev: denoise(ev, 40),
        lambda ev: denoise(ev, 40, connectivity=8),
        lambda ev: refractory_period(ev, 30),
        lambda ev: refractory_period(ev, 30, reference="kept"),
        lambda ev: downsample(ev, SENSORS[1], spatial_factor=0.3, time_factor=0.01)[0],
    ):
        np.testing.assert_array_equal(fn(mapped), fn(events))
        np.testing.assert_array_equal(fn(strided), fn(strided.copy()))
    assert len(denoise(events[:1], 40)) == len(refractory_period(events[:0], 30)) == 0


def test_downsample_equals_tonic_and_keeps_integer_times_exact() -> None:
    rng = np.random.default_rng(11)
    events = random_stream(rng, SENSORS[0], n=500)
    for kwargs in (dict(spatial_factor=0.5, time_factor=0.001), dict(spatial_factor=(0.3, 2.5), time_factor=3)):
        out, _ = downsample(events, SENSORS[0], **kwargs)
        np.testing.assert_array_equal(out, tt.Downsample(**kwargs)(events.copy()))
    late = events.copy()
    late["t"] += 2**55  # past 2**53 µs a float product rounds; an integer factor does not
    for factor in (1, 1.0, 3):
        out, _ = downsample(late, SENSORS[0], time_factor=factor)
        np.testing.assert_array_equal(out["t"], late["t"] * int(factor))
    big, _ = downsample(events, SENSORS[0], spatial_factor=1_000)  # int16 wraps as numpy's cast does
    np.testing.assert_array_equal(big["x"], (events["x"] * 1_000.0).astype(np.int64).astype(np.int16))


def test_searchsorted_of_strided_times_equals_numpy() -> None:
    rng = np.random.default_rng(12)
    for offset in (0, 2**53 - 1_000):  # past 2**53 the float comparison rounds the times as numpy's does
        t = np.sort(rng.integers(0, 3_000, 4_000)) + offset
        events = make_events(np.zeros(4_000), np.zeros(4_000), t, np.zeros(4_000))
        strided = events["t"]
        assert not strided.flags.c_contiguous
        for values in (
            np.array([-5, 0, 1, 2_999, 3_000, 10**9]) + offset,
            rng.integers(-10, 3_010, 40) + offset,
            rng.uniform(-10, 3_010, 40) + offset,
            np.array([], dtype=np.int64),
        ):
            np.testing.assert_array_equal(_searchsorted(strided, values), np.searchsorted(t, values))
