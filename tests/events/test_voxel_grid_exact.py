"""voxel_grid bit for bit against tonic 1.7's ToVoxelGrid on the cases its block-wise pass must get
right: bin starts found from a coarse sample, blocks of whole bins, held-back right parts, events at
t_last, empty bins, many bins; and its fused event checks against validate()'s own errors."""

from __future__ import annotations

import numpy as np
import pytest
import tonic.transforms as tt

from event_lightning.events.core import EVENT_DTYPE, EventFormatError, SensorSize, make_events, validate
from event_lightning.events.represent import voxel
from event_lightning.events.represent.voxel import voxel_grid

SENSOR = SensorSize(37, 23, 2)  # non-square: a W/H swap cannot go unnoticed
GESTURE = SensorSize(128, 128, 2)


def _events(rng: np.random.Generator, t: np.ndarray, sensor: SensorSize = SENSOR) -> np.ndarray:
    n = len(t)
    return make_events(
        rng.integers(0, sensor.width, n), rng.integers(0, sensor.height, n), t, rng.integers(0, 2, n)
    )


def _assert_same_as_tonic(events: np.ndarray, sensor: SensorSize, n_bins: int) -> None:
    # tonic's function writes -1 into the polarity field it is given: hand it a copy
    expected = tt.ToVoxelGrid(sensor.as_tonic(), n_bins)(events.copy())
    grid = voxel_grid(events, sensor, n_bins)
    assert grid.dtype == expected.dtype == np.float64
    assert grid.shape == expected.shape == (n_bins, 1, sensor.height, sensor.width)
    # bits, not values: a -0.0 for a 0.0 or any last-digit difference fails
    np.testing.assert_array_equal(grid.view(np.uint64), expected.view(np.uint64))


@pytest.fixture(params=[voxel._VOXEL_BLOCK, 7, 64], ids=["whole-stream", "block-7", "block-64"])
def block(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Streams up to ``_VOXEL_BLOCK`` events take the whole-stream pass; small blocks send the same
    short streams through the block-wise pass across many block boundaries (multi-bin blocks, a
    bin larger than a block, held-back right parts)."""
    monkeypatch.setattr(voxel, "_VOXEL_BLOCK", request.param)
    return request.param


def test_gesture_like_stream_is_bit_identical() -> None:
    rng = np.random.default_rng(0)
    n = 500_000
    events = _events(rng, np.sort(rng.integers(0, 6_000_000, n)), GESTURE)
    for n_bins in (16, 5):
        _assert_same_as_tonic(events, GESTURE, n_bins)


@pytest.mark.parametrize("n_bins", [1, 2, 3, 10, 200])
def test_random_streams_with_repeated_timestamps(block: int, n_bins: int) -> None:
    rng = np.random.default_rng(n_bins)
    for n, distinct in [(2, 2), (5, 3), (60, 4), (400, 7), (1_500, 50), (3_000, 100_000)]:
        times = np.sort(rng.integers(0, distinct, n)) * 37
        times[-1] = times[0] + 37 * max(distinct - 1, 1)  # never a zero span
        _assert_same_as_tonic(_events(rng, times), SENSOR, n_bins)


def test_all_events_in_one_bin(block: int) -> None:
    rng = np.random.default_rng(1)
    # everything but the last event lands in bin 0 of 4 (its right parts all go to bin 1)
    times = np.concatenate([np.sort(rng.integers(0, 1_000, 900)), [1_000_000]])
    _assert_same_as_tonic(_events(rng, times), SENSOR, 4)
    # everything but the first event lands in the last bin (its right parts are all dropped)
    times = np.concatenate([[0], np.sort(rng.integers(999_000, 1_000_000, 900))])
    _assert_same_as_tonic(_events(rng, times), SENSOR, 4)


def test_many_events_at_the_last_time(block: int) -> None:
    rng = np.random.default_rng(2)
    times = np.sort(rng.integers(0, 10_000, 600))
    times[-250:] = 10_000  # τ = T exactly: no part of them is added, but they are checked
    for n_bins in (1, 3, 8):
        _assert_same_as_tonic(_events(rng, times), SENSOR, n_bins)


def test_empty_bins_and_more_bins_than_events(block: int) -> None:
    rng = np.random.default_rng(3)
    gap = np.concatenate([np.sort(rng.integers(0, 100, 300)), np.sort(rng.integers(900, 1_001, 300))])
    _assert_same_as_tonic(_events(rng, gap), SENSOR, 10)  # bins 1-8 have no events
    sparse = np.sort(rng.choice(1_000_000, 50, replace=False))
    _assert_same_as_tonic(_events(rng, sparse), SENSOR, 200)
    _assert_same_as_tonic(_events(rng, np.array([10, 20])), SENSOR, 200)


def test_bin_starts_are_exact_at_bin_edges() -> None:
    # times placed on and one µs around every bin edge: τ lands on integers exactly
    n_bins, span = 7, 7_000
    edges = np.arange(n_bins + 1) * (span // n_bins)
    times = np.sort(np.concatenate([edges, edges[1:] - 1, edges[:-1] + 1, edges, edges]))
    rng = np.random.default_rng(4)
    events = _events(rng, times)
    starts = voxel._bin_starts(events["t"], voxel._TimeScale(0.0, float(n_bins), float(span)), n_bins)
    tau = n_bins * (times.astype(float) - times[0]) / span
    assert starts == [int(np.searchsorted(tau, b, side="left")) for b in range(n_bins + 1)]
    _assert_same_as_tonic(events, SENSOR, n_bins)


def test_strided_input_and_times_beyond_2_to_53(block: int) -> None:
    rng = np.random.default_rng(5)
    events = _events(rng, np.sort(rng.integers(0, 50_000, 4_000)))
    _assert_same_as_tonic(events[::3], SENSOR, 6)  # a non-contiguous view of the records
    # past 2**53 µs the float order check is not exact: validate() runs up front instead
    late = _events(rng, 2**60 + np.sort(rng.integers(0, 2**40, 2_000)))
    _assert_same_as_tonic(late, SENSOR, 5)
    late["t"][700] = late["t"][699] - 1
    with pytest.raises(EventFormatError, match="sorted ascending"):
        voxel_grid(late, SENSOR, 5)


def test_zero_span_single_and_empty_streams() -> None:
    # documented differences from tonic (which divides by zero): everything in bin 0
    rng = np.random.default_rng(6)
    events = _events(rng, np.full(300, 1_234))
    grid = voxel_grid(events, SENSOR, 3)
    expected = np.zeros((SENSOR.height, SENSOR.width))
    np.add.at(expected, (events["y"], events["x"]), np.where(events["p"] == 1, 1.0, -1.0))
    np.testing.assert_array_equal(grid[0, 0], expected)
    assert not grid[1:].any()
    single = voxel_grid(make_events([4], [7], [123], [1]), SENSOR, 1)
    assert single[0, 0, 7, 4] == 1 and np.count_nonzero(single) == 1
    empty = voxel_grid(np.zeros(0, dtype=EVENT_DTYPE), SENSOR, 4)
    assert empty.shape == (4, 1, 23, 37) and empty.dtype == np.float64 and not empty.any()


def _validate_message(events: np.ndarray, sensor: SensorSize) -> str:
    with pytest.raises(EventFormatError) as error:
        validate(events, sensor, origin="voxel_grid")
    return str(error.value)


BAD_EVENTS = [
    ("x", 5, 37),  # first block
    ("x", 2_500, -1),  # a later block
    ("y", 1_234, 23),
    ("y", 2_999, -3),  # among the events at t_last (checked, never added)
    ("p", 1_800, 2),
    ("p", 7, -1),
    ("t", 1_500, 0),  # decreasing in the middle of a block
    ("t", 0, -5),  # negative first time
]


def _assert_bad_event_raises_validates_error(field: str, index: int, value: int) -> None:
    rng = np.random.default_rng(7)
    times = np.sort(rng.integers(0, 100_000, 3_000))
    times[-5:] = times[-1]
    events = _events(rng, times)
    events[field][index] = value
    with pytest.raises(EventFormatError) as error:
        voxel_grid(events, SENSOR, 8)
    assert str(error.value) == _validate_message(events, SENSOR)


@pytest.mark.parametrize("field, index, value", BAD_EVENTS)
def test_bad_events_raise_validates_error(block: int, field: str, index: int, value: int) -> None:
    _assert_bad_event_raises_validates_error(field, index, value)


@pytest.mark.parametrize("field, index, value", BAD_EVENTS)
def test_bad_events_past_the_kept_right_parts_raise_validates_error(
    field: str, index: int, value: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the compiled pass keeps the right parts of a bin's first 3 events only: the bad event (one of
    # ~375 in its bin) is then checked by the loop that keeps none
    monkeypatch.setattr(voxel, "_RUN_KEPT", 3)
    _assert_bad_event_raises_validates_error(field, index, value)


def test_order_checked_across_block_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    # two sorted runs each: with blocks of at most 7 events, the bin starts found on them put the
    # only decrease exactly between two blocks (18 -> 5 before the tail, 17 -> 10 at it), where
    # only the check against the previous block's last event sees it
    monkeypatch.setattr(voxel, "_VOXEL_BLOCK", 7)
    for times, n_bins in [
        ([2, 4, 9, 11, 15, 17, 18, 18, 18, 5, 11], 2),
        ([2, 7, 11, 13, 13, 14, 14, 16, 16, 17, 10], 3),
    ]:
        runs = make_events(np.zeros(11, int), np.zeros(11, int), times, [1] * 11)
        with pytest.raises(EventFormatError) as error:
            voxel_grid(runs, SENSOR, n_bins)
        assert str(error.value) == _validate_message(runs, SENSOR)
    monkeypatch.setattr(voxel, "_VOXEL_BLOCK", 16)
    rng = np.random.default_rng(8)
    events = _events(rng, np.arange(0, 4_000, 10))
    starts = voxel._bin_starts(events["t"], voxel._TimeScale(0.0, 50.0, 3_990.0), 50)
    for first_of_block in (starts[20], starts[50]):  # a bin start, the start of the t_last events
        broken = events.copy()
        broken["t"][first_of_block] = broken["t"][first_of_block - 1] - 1
        with pytest.raises(EventFormatError) as error:
            voxel_grid(broken, SENSOR, 50)
        assert str(error.value) == _validate_message(broken, SENSOR)


def test_argument_errors() -> None:
    events = make_events([1], [1], [1], [1])
    with pytest.raises(ValueError, match="2-polarity"):
        voxel_grid(events, SensorSize(37, 23, 1), 3)
    with pytest.raises(ValueError, match="positive integer"):
        voxel_grid(events, SENSOR, 0)
    with pytest.raises(ValueError, match="2\\*\\*32 pixels"):
        voxel_grid(events, SensorSize(2**17, 2**16, 2), 1)
