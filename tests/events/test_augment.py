"""Augmentations and filters: equal to tonic 1.7 where it has the transform, else a direct definition."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import tonic.transforms as tt

from event_lightning.events import augment as A
from event_lightning.events.augment import filters
from event_lightning.events.core import EVENT_DTYPE, EventFormatError, SensorSize, make_events

SENSOR = SensorSize(240, 180, 2)  # non-square
DENSE = SensorSize(8, 5, 2)  # few pixels: many neighbour and same-pixel interactions


def _stream(seed: int, n: int, sensor: SensorSize = SENSOR, duration: int = 100_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, duration, n))
    return make_events(
        rng.integers(0, sensor.width, n), rng.integers(0, sensor.height, n), t, rng.integers(0, 2, n)
    )


def _cases() -> list[tuple[int, int, SensorSize, int]]:
    """(seed, n events, sensor, duration µs): streams that are sparse, dense, short, long."""
    cases = []
    for seed, n, sensor in itertools.product(range(3), [1, 2, 40, 2_000], [SENSOR, DENSE]):
        cases.append((seed, n, sensor, [1_000, 100_000][seed % 2]))
    return cases


# ------------------------------------------------------------------------------------------
# tonic-exact filters


@pytest.mark.parametrize("filter_time", [0, 1, 500, 5_000, 20_000.5])
def test_denoise_equals_tonic(filter_time: float) -> None:
    for seed, n, sensor, duration in _cases():
        events = _stream(seed, n, sensor, duration)
        expected = tt.Denoise(filter_time)(events.copy())
        np.testing.assert_array_equal(A.denoise(events, filter_time), expected)
    assert len(A.denoise(np.zeros(0, dtype=EVENT_DTYPE), 100)) == 0


@pytest.mark.parametrize("table_cells", [1, 150, 300])
@pytest.mark.parametrize("filter_time", [0.3, 1e-20, 1, 2.7, 700, -5])
def test_denoise_equals_tonic_with_small_tables(filter_time: float, table_cells: int, monkeypatch) -> None:
    """Tables of one to a few block rows: the previous group's last block carries over into row 0,
    and entries older groups left in the table must never count (DENSE's padded plane is 70 cells)."""
    monkeypatch.setattr(filters, "_DENOISE_TABLE_CELLS", table_cells)
    for seed, n, sensor, duration in _cases():
        events = _stream(seed, n, sensor, duration)
        if seed == 2:  # a late start and gaps of empty blocks
            events["t"] = events["t"] * 7 + 50_000
        expected = tt.Denoise(filter_time)(events.copy())
        np.testing.assert_array_equal(A.denoise(events, filter_time), expected)


def test_denoise_refuses_negative_timestamps() -> None:
    events = make_events([1, 2], [1, 1], [-5, 3], [0, 1])
    with pytest.raises(EventFormatError, match="denoise: timestamps must be >= 0"):
        A.denoise(events, 100)


def _denoise_reference(events: np.ndarray, filter_time: float, offsets: list[tuple[int, int]]) -> np.ndarray:
    """Sequential definition: latest earlier event per pixel, virtual events at t=0 in the box."""
    width, height = events["x"].max() + 1, events["y"].max() + 1
    last = np.zeros((width, height))
    keep = []
    for event in events:
        x, y, t = int(event["x"]), int(event["y"]), int(event["t"])
        near = [last[x + dx, y + dy] for dx, dy in offsets if 0 <= x + dx < width and 0 <= y + dy < height]
        keep.append(any(v + filter_time > t for v in near))
        last[x, y] = t
    return events[np.array(keep, dtype=bool)]


@pytest.mark.parametrize("table_cells", [1, 150, 1 << 16])
def test_denoise_eight_neighbours(table_cells: int, monkeypatch) -> None:
    monkeypatch.setattr(filters, "_DENOISE_TABLE_CELLS", table_cells)
    eight = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0)]
    for seed in range(3):
        events = _stream(seed, 600, DENSE if seed else SensorSize(30, 20, 2), duration=60_000)
        expected = _denoise_reference(events, 700, eight)
        np.testing.assert_array_equal(A.denoise(events, 700, connectivity=8), expected)
        assert len(expected) > len(A.denoise(events, 700))  # diagonals do add neighbours


@pytest.mark.parametrize("delta", [0, 1, 100, 5_000, 1_500.5])
def test_refractory_period_equals_tonic(delta: float) -> None:
    for seed, n, sensor, duration in _cases():
        events = _stream(seed, n, sensor, duration)
        expected = tt.RefractoryPeriod(delta)(events.copy())
        np.testing.assert_array_equal(A.refractory_period(events, delta), expected)


def _dead_time_reference(events: np.ndarray, delta: float) -> np.ndarray:
    last_kept: dict[tuple[int, int], int] = {}
    keep = []
    for event in events:
        pixel, t = (int(event["x"]), int(event["y"])), int(event["t"])
        ok = pixel not in last_kept or t - last_kept[pixel] > delta
        keep.append(ok)
        if ok:
            last_kept[pixel] = t
    return events[np.array(keep, dtype=bool)]


def test_refractory_period_after_last_kept_event() -> None:
    for seed, delta in itertools.product(range(4), [0, 3, 250, 999.5]):
        events = _stream(seed, 1_500, DENSE, duration=20_000)
        kept = A.refractory_period(events, delta, reference="kept")
        np.testing.assert_array_equal(kept, _dead_time_reference(events, delta))
    # one hot pixel firing every 10 µs with a 25 µs dead time keeps every third event
    hot = make_events(np.zeros(100), np.zeros(100), np.arange(100) * 10, np.ones(100))
    np.testing.assert_array_equal(A.refractory_period(hot, 25, reference="kept")["t"], np.arange(0, 1000, 30))


def test_downsample_equals_tonic() -> None:
    for seed, n, sensor, duration in _cases():
        events = _stream(seed, n, sensor, duration)
        for kwargs in (
            dict(spatial_factor=0.5),
            dict(spatial_factor=(0.25, 0.7), time_factor=0.001),
            dict(time_factor=3.3),
            dict(target_size=(sensor.width // 3 + 1, sensor.height // 2 + 1)),
        ):
            tonic_kwargs = dict(kwargs, sensor_size=sensor.as_tonic()) if "target_size" in kwargs else kwargs
            expected = tt.Downsample(**tonic_kwargs)(events.copy())
            out, new_sensor = A.downsample(events, sensor, **kwargs)
            np.testing.assert_array_equal(out, expected)
            assert out["x"].max() < new_sensor.width and out["y"].max() < new_sensor.height
    _, sensor = A.downsample(_stream(0, 5), SENSOR, target_size=(60, 45))
    assert sensor == SensorSize(60, 45, 2)
    _, sensor = A.downsample(_stream(0, 5), SensorSize(34, 34, 2), spatial_factor=0.5)
    assert sensor == SensorSize(17, 17, 2)


@pytest.mark.parametrize("size", [3, (5, 2), (240, 180), (243, 184), (239, 185)])
def test_center_crop_equals_tonic(size: int | tuple[int, int]) -> None:
    for seed, n in itertools.product(range(3), [0, 1, 500]):
        events = _stream(seed, n)
        expected = tt.CenterCrop(SENSOR.as_tonic(), size)(events.copy())
        out, sensor = A.center_crop(events, SENSOR, size)
        np.testing.assert_array_equal(out, expected)
        width, height = (size, size) if isinstance(size, int) else size
        assert sensor == SensorSize(width, height, 2)
        if len(out):
            assert out["x"].max() < width and out["y"].max() < height


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_flips_equal_tonic_at_certain_probabilities(p: float) -> None:
    events = _stream(5, 300)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(
        A.flip_lr(events, SENSOR, rng, p=p), tt.RandomFlipLR(SENSOR.as_tonic(), p)(events)
    )
    np.testing.assert_array_equal(
        A.flip_ud(events, SENSOR, rng, p=p), tt.RandomFlipUD(SENSOR.as_tonic(), p)(events)
    )
    np.testing.assert_array_equal(A.flip_polarity(events, rng, p=p), tt.RandomFlipPolarity(p)(events))


def test_flip_probability_and_involution() -> None:
    events = _stream(6, 200)
    rng = np.random.default_rng(1)
    flipped = [not np.array_equal(A.flip_lr(events, SENSOR, rng, p=0.3), events) for _ in range(2_000)]
    assert 0.25 < np.mean(flipped) < 0.35
    twice = A.flip_ud(A.flip_ud(events, SENSOR, rng, p=1), SENSOR, rng, p=1)
    np.testing.assert_array_equal(twice, events)


# ------------------------------------------------------------------------------------------
# random transforms: direct definitions


def test_random_crop_hits_every_position() -> None:
    sensor = SensorSize(6, 4, 2)
    x, y = np.meshgrid(np.arange(6), np.arange(4))
    grid = make_events(x.ravel(), y.ravel(), np.arange(24), np.zeros(24))  # one event per pixel, t = index
    rng = np.random.default_rng(2)
    seen = set()
    for _ in range(300):
        out, cropped = A.random_crop(grid, sensor, (3, 2), rng)
        assert cropped == SensorSize(3, 2, 2) and len(out) == 6
        x0, y0 = int(grid["x"][out["t"][0]]), int(grid["y"][out["t"][0]])  # t identifies the source pixel
        np.testing.assert_array_equal(out["x"], grid["x"][out["t"]] - x0)
        np.testing.assert_array_equal(out["y"], grid["y"][out["t"]] - y0)
        seen.add((x0, y0))
    assert seen == {(a, b) for a in range(4) for b in range(3)}
    with pytest.raises(ValueError, match="exceeds"):
        A.random_crop(grid, sensor, (7, 2), rng)


def test_spatial_jitter_direct_definition() -> None:
    events = _stream(7, 2_000, SensorSize(20, 15, 2))
    sensor = SensorSize(20, 15, 2)
    cov = [[2.0, 0.5], [0.5, 1.0]]
    shifts = np.rint(np.random.default_rng(3).multivariate_normal([0, 0], cov, size=len(events))).astype(int)
    x, y = events["x"] + shifts[:, 0], events["y"] + shifts[:, 1]
    inside = (x >= 0) & (x < 20) & (y >= 0) & (y < 15)
    out = A.spatial_jitter(events, sensor, np.random.default_rng(3), var_x=2.0, var_y=1.0, sigma_xy=0.5)
    np.testing.assert_array_equal(out["x"], x[inside])
    np.testing.assert_array_equal(out["y"], y[inside])
    np.testing.assert_array_equal(out["t"], events["t"][inside])
    clamped = A.spatial_jitter(
        events, sensor, np.random.default_rng(3), var_x=2.0, var_y=1.0, sigma_xy=0.5, outliers="clamp"
    )
    assert len(clamped) == len(events) and 0 < (~inside).sum()
    np.testing.assert_array_equal(clamped["x"], np.clip(x, 0, 19))
    unchanged = A.spatial_jitter(events, sensor, np.random.default_rng(0), var_x=0, var_y=0)
    np.testing.assert_array_equal(unchanged, events)


def test_time_jitter_direct_definition() -> None:
    events = _stream(8, 1_000, duration=5_000)
    noise = np.rint(np.random.default_rng(4).normal(0, 300.0, len(events))).astype(np.int64)
    t = events["t"] + noise
    out = A.time_jitter(events, np.random.default_rng(4), std=300.0)
    kept = events[t >= 0].copy()
    kept["t"] = t[t >= 0]
    np.testing.assert_array_equal(out, kept[np.argsort(kept["t"], kind="stable")])
    assert (np.diff(out["t"]) >= 0).all() and len(out) < len(events)
    clamped = A.time_jitter(events, np.random.default_rng(4), std=300.0, negative="clamp")
    assert len(clamped) == len(events) and clamped["t"].min() == 0


def test_drop_event_count_and_order() -> None:
    events = _stream(9, 1_001)
    out = A.drop_event(events, np.random.default_rng(5), p=0.3)
    assert len(out) == 1_001 - int(0.3 * 1_001 + 0.5)
    assert np.isin(out, events).all() and (np.diff(out["t"]) >= 0).all()
    drawn = A.drop_event(events, np.random.default_rng(5), p=(0.1, 0.2))
    assert 1_001 - 201 <= len(drawn) <= 1_001 - 100
    assert len(A.drop_event(np.zeros(0, dtype=EVENT_DTYPE), np.random.default_rng(0), p=0.5)) == 0


def test_drop_by_time_removes_one_interval() -> None:
    events = _stream(10, 3_000, duration=1_000_000)
    t = events["t"]
    for seed in range(5):
        out = A.drop_by_time(events, np.random.default_rng(seed), duration_ratio=0.25)
        dropped = t[~np.isin(t, out["t"])]
        assert len(dropped) > 0
        assert dropped.max() - dropped.min() <= 0.25 * (t[-1] - t[0])
        # nothing kept inside the dropped interval: the dropped events are contiguous in the stream
        inside = (t >= dropped.min()) & (t <= dropped.max())
        assert inside.sum() == len(events) - len(out)


def test_drop_by_area_removes_one_box() -> None:
    events = _stream(11, 5_000)
    for seed in range(5):
        out = A.drop_by_area(events, SENSOR, np.random.default_rng(seed), area_ratio=0.3)
        rng = np.random.default_rng(seed)
        x0, y0 = rng.integers(0, 240 - 72), rng.integers(0, 180 - 54)
        box = (events["x"] >= x0) & (events["x"] < x0 + 72) & (events["y"] >= y0) & (events["y"] < y0 + 54)
        np.testing.assert_array_equal(out, events[~box])
        assert box.sum() > 0


def test_compose_threads_sensor_size_and_keeps_input() -> None:
    events = _stream(12, 2_000)
    original = events.copy()
    pipeline = A.Compose(
        (
            A.Denoise(filter_time=5_000),
            A.RefractoryPeriod(delta=(100, 300)),
            A.CenterCrop(size=(200, 150)),
            A.Downsample(spatial_factor=0.5),
            A.FlipLR(p=1.0),
            A.RandomCrop(size=(64, 48)),
            A.SpatialJitter(var_x=0.5, var_y=0.5),
            A.TimeJitter(std=50),
            A.DropEvent(p=0.1),
            A.DropByTime(duration_ratio=0.1),
            A.DropByArea(area_ratio=0.1),
            A.FlipUD(p=0.5),
            A.FlipPolarity(p=0.5),
        )
    )
    out, sensor = pipeline(events, SENSOR, np.random.default_rng(0))
    assert sensor == SensorSize(64, 48, 2) and out.dtype == EVENT_DTYPE and 0 < len(out) < len(events)
    assert out["x"].max() < 64 and out["y"].max() < 48 and (np.diff(out["t"]) >= 0).all()
    np.testing.assert_array_equal(events, original)


def test_filters_reject_unsorted_streams() -> None:
    events = _stream(13, 50)[::-1]
    with pytest.raises(EventFormatError, match="sorted"):
        A.denoise(events, 100)
    with pytest.raises(EventFormatError, match="sorted"):
        A.refractory_period(events, 100)
