"""Event counts per frame, polarity and pixel of one sample: :func:`to_frame`.

:func:`to_frame` reproduces tonic 1.7's ``ToFrame`` values exactly (slice formulas, overlap,
``include_incomplete``, single-polarity sensors, int16 wrap-around) but computes all slice
boundaries at once, then checks, indexes and counts every event in one compiled pass
(:mod:`event_lightning.events.kernels.frames`). Where the compiled kernels cannot load, one
``np.add.at`` counts every frame instead (same values). Two deliberate differences: an empty
stream gives int16 zeros of shape ``(T, P, H, W)`` (tonic returns float64 ``(T, P, W, H)``), and
events outside the sensor raise :class:`EventFormatError` instead of an IndexError or a silent
negative-index wrap.
"""

from __future__ import annotations

import numpy as np

from event_lightning.events.core import SensorSize
from event_lightning.events.kernels.loading import compiled_kernels
from event_lightning.events.represent.pixels import _as_events, _pixel_index
from event_lightning.events.represent.reused_memory import empty_output
from event_lightning.events.represent.slicing import FrameSlicing, _expand_ranges, _slice_bounds


def _count_frames(pix: np.ndarray, starts: np.ndarray, ends: np.ndarray, frame_size: int) -> np.ndarray:
    """Histogram of ``pix[starts[k]:ends[k]]`` per frame k -> int16 ``[T, frame_size]``.

    One unbuffered ``np.add.at`` of ``int16(1)`` per member into a zeroed int16 output: counts
    wrap modulo 2**16 exactly like tonic's in-place int16 ``np.add.at``, and numpy (>= 1.25)
    runs this integer case in a tight loop that writes only the touched cells, several times
    faster than a bincount, which fills and then narrows an int64 histogram of every cell.
    """
    n_frames = len(starts)
    out = np.zeros(n_frames * frame_size, dtype=np.int16)
    lengths = np.maximum(ends - starts, 0)
    if n_frames == 0 or not lengths.any():
        return out.reshape(n_frames, frame_size)
    if np.array_equal(starts[1:], ends[:-1]) and (ends >= starts).all():
        # back-to-back frames (no overlap): the members are one contiguous run of events
        flat = np.repeat(np.arange(n_frames, dtype=np.int64) * frame_size, lengths)
        flat += pix[starts[0] : ends[-1]]
    else:
        bounds = np.unique(np.concatenate([starts, np.maximum(ends, starts)]))
        if (len(bounds) - 1) * frame_size < 4 * int(lengths.sum()):
            return _count_overlapping_by_segments(pix, starts, ends, bounds, frame_size)
        frame_id, member = _expand_ranges(starts, ends)
        flat = frame_id * frame_size + pix[member]
    np.add.at(out, flat, np.int16(1))
    return out.reshape(n_frames, frame_size)


def _count_overlapping_by_segments(
    pix: np.ndarray, starts: np.ndarray, ends: np.ndarray, bounds: np.ndarray, frame_size: int
) -> np.ndarray:
    """Overlapping frames from the histograms of the segments between consecutive frame bounds.

    Every event is counted once, into its segment; a frame is a difference of cumulative
    segment histograms. int16 wraps modulo 2**16 in the sums and the difference alike, so the
    result equals counting each frame on its own (tonic's wrap-around included). Worth it when
    there are few segments (bins of a fixed count, e.g. ``n_time_bins`` with overlap).
    """
    n_segments = len(bounds) - 1
    cumulative = np.zeros((n_segments + 1) * frame_size, dtype=np.int16)
    segment_lengths = np.diff(bounds)
    # segment j is row j + 1, so the cumulative sum below leaves row 0 empty
    flat = np.repeat(np.arange(1, n_segments + 1, dtype=np.int64) * frame_size, segment_lengths)
    flat += pix[bounds[0] : bounds[-1]]
    np.add.at(cumulative, flat, np.int16(1))
    cumulative = cumulative.reshape(n_segments + 1, frame_size)
    for row in range(2, n_segments + 1):  # over segments: numpy's axis-0 cumsum is ~50x slower here
        cumulative[row] += cumulative[row - 1]
    first = np.searchsorted(bounds, starts)
    last = np.searchsorted(bounds, np.maximum(ends, starts))
    return cumulative[last] - cumulative[first]


def to_frame(
    events: np.ndarray,
    sensor_size: SensorSize | tuple[int, int, int],
    *,
    time_window: float | None = None,
    event_count: int | None = None,
    n_time_bins: int | None = None,
    n_event_bins: int | None = None,
    overlap: float = 0,
    include_incomplete: bool = False,
    start_time: float | None = None,
    end_time: float | None = None,
) -> np.ndarray:
    """Count events per frame, polarity and pixel -> int16 ``(T, P, H, W)``.

    Exactly one slicing mode (see :class:`FrameSlicing`):

    - ``time_window`` (µs): windows ``[s, s + time_window)`` with ``s = start + k·(time_window −
      overlap)``, ``start`` = first event (or ``start_time``); ``T = ⌊(end − start − W)/stride⌋ + 1``
      (``⌈…⌉ + 1`` with ``include_incomplete``), at least 1.
    - ``event_count``: runs of that many consecutive events, stride ``event_count − overlap``.
    - ``n_time_bins``: ``T`` windows of ``(t_last − t_first) // T · (1 + overlap)`` µs.
    - ``n_event_bins``: ``T`` runs of ``int(N // T · (1 + overlap))`` events.

    Args:
        events: one sample, sorted by ``t`` (µs); any structured array with x, y, t, p.
        sensor_size: :class:`SensorSize` or tonic's ``(W, H, P)``. With ``P == 1`` the stream
            may hold one polarity value only; it goes to channel 0.

    Returns:
        int16 ``(T, P, H, W)`` counts (wrapping modulo 2**16 like tonic). An empty stream gives
        zeros with ``T = 1`` (window/count modes) or ``T`` = the bin count.
    """
    cfg = FrameSlicing(
        time_window, event_count, n_time_bins, n_event_bins, overlap, include_incomplete, start_time, end_time
    )
    return frame_events(events, sensor_size, cfg)


def frame_events(
    events: np.ndarray,
    sensor_size: SensorSize | tuple[int, int, int],
    slicing: FrameSlicing,
    *,
    checked: bool = False,
) -> np.ndarray:
    """:func:`to_frame` with its options bundled in ``slicing``: int16 ``(T, P, H, W)`` counts.

    ``checked=True`` says the caller has just validated the events against the same
    ``sensor_size`` (a dataset that validates each sample once on reading). The compiled pass
    checks every event anyway (it costs nothing there) and raises :func:`validate`'s error; the
    numpy fallback then skips the checks, and events that were not validated give wrong counts
    or an IndexError instead of a clear error.
    """
    sensor = SensorSize.coerce(sensor_size)
    events = _as_events(events)
    kernels = compiled_kernels("frames")
    if kernels is None:
        return _frame_events_numpy(events, sensor, slicing, checked)
    if len(events) == 0:
        return np.zeros((slicing.empty_frames, *sensor.frame_shape), dtype=np.int16)
    t = events["t"]
    if t[0] < 0 or t[-1] < t[0]:  # frame bounds from such times could ask for any number of frames
        _raise_invalid(events, sensor)
    starts, ends = (np.ascontiguousarray(b, dtype=np.int64) for b in _slice_bounds(t, slicing))
    out = empty_output(len(starts) * sensor.num_features, np.int16)
    if kernels.count_frames(events, starts, ends, out, sensor.width, sensor.height, sensor.polarities) >= 0:
        _raise_invalid(events, sensor)
    return out.reshape(-1, *sensor.frame_shape)


def _frame_events_numpy(events: np.ndarray, sensor: SensorSize, slicing: FrameSlicing, checked: bool) -> np.ndarray:
    """:func:`frame_events` in numpy: the pixel index of every event, then :func:`_count_frames`."""
    pix = _pixel_index(events, sensor, "to_frame", checked=checked)
    if len(events) == 0:
        return np.zeros((slicing.empty_frames, *sensor.frame_shape), dtype=np.int16)
    starts, ends = _slice_bounds(events["t"], slicing)
    return _count_frames(pix, starts, ends, sensor.num_features).reshape(-1, *sensor.frame_shape)


def _raise_invalid(events: np.ndarray, sensor: SensorSize) -> None:
    """Raise the error the numpy path raises for events the compiled pass rejected."""
    _pixel_index(events, sensor, "to_frame")
    raise AssertionError("to_frame: the compiled pass rejected events that validate() accepts")
