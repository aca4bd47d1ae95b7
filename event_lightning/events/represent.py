"""Event streams -> dense tensors: frames, voxel grids, stacked histograms, time surfaces.

Every function takes one sample (an :data:`~event_lightning.events.core.EVENT_DTYPE` array, or any
structured array with fields x, y, t, p, converted by name) plus a :class:`SensorSize`, and
returns a numpy array with the time/bin axis first: ``(T, P, H, W)``. :func:`to_frame_torch`
does the same for a whole batch already on a device and returns ``[T, B, P, H, W]``.

:func:`to_frame` reproduces tonic 1.7's ``ToFrame`` values exactly (slice formulas, overlap,
``include_incomplete``, single-polarity sensors, int16 wrap-around) but computes all slice
boundaries at once and counts every frame with one ``np.add.at`` instead of one per slice. Two
deliberate differences: an empty stream gives int16 zeros of shape ``(T, P, H, W)`` (tonic
returns float64 ``(T, P, W, H)``), and events outside the sensor raise
:class:`EventFormatError` instead of an IndexError or a silent negative-index wrap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from event_lightning.events.core import EVENT_DTYPE, EventFormatError, SensorSize, to_event_array, validate

FRAME_MODES = ("time_window", "event_count", "n_time_bins", "n_event_bins")


@dataclass(frozen=True)
class FrameSlicing:
    """The slicing options of :func:`to_frame`, checked once: exactly one of the four modes.

    ``overlap`` is in µs for ``time_window``, in events for ``event_count`` and a fraction of a
    bin in ``[0, 1)`` for ``n_time_bins`` / ``n_event_bins``. ``include_incomplete`` keeps the
    short trailing slice (window/count modes only); ``start_time`` / ``end_time`` (µs) replace the
    first/last event time in ``time_window`` mode.
    """

    time_window: float | None = None
    event_count: int | None = None
    n_time_bins: int | None = None
    n_event_bins: int | None = None
    overlap: float = 0
    include_incomplete: bool = False
    start_time: float | None = None
    end_time: float | None = None

    def __post_init__(self) -> None:
        given = [name for name in FRAME_MODES if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                f"to_frame: set exactly one of {', '.join(FRAME_MODES)}; found "
                f"{'none' if not given else ', '.join(f'{n}={getattr(self, n)!r}' for n in given)}"
            )
        value = getattr(self, self.mode)
        if value <= 0:
            raise ValueError(f"to_frame: {self.mode} must be > 0, found {value!r}")
        if self.mode in ("event_count", "n_time_bins", "n_event_bins") and int(value) != value:
            raise ValueError(f"to_frame: {self.mode} must be an integer, found {value!r}")
        if self.mode == "time_window" and self.time_window - self.overlap <= 0:
            raise ValueError(
                f"to_frame: time_window - overlap must be > 0 µs, found time_window={self.time_window!r}, "
                f"overlap={self.overlap!r}"
            )
        if self.mode == "event_count" and self.event_count - self.overlap <= 0:
            raise ValueError(
                f"to_frame: event_count - overlap must be > 0 events, found "
                f"event_count={self.event_count!r}, overlap={self.overlap!r}"
            )
        if self.mode in ("n_time_bins", "n_event_bins") and not 0 <= self.overlap < 1:
            raise ValueError(
                f"to_frame: with {self.mode} the overlap is a fraction of a bin in [0, 1), "
                f"found {self.overlap!r}"
            )

    @property
    def mode(self) -> str:
        """The one mode set: ``time_window``, ``event_count``, ``n_time_bins`` or ``n_event_bins``."""
        return next(name for name in FRAME_MODES if getattr(self, name) is not None)

    @property
    def empty_frames(self) -> int:
        """Frames returned for an empty stream: 1 for window/count modes, the bin count otherwise."""
        if self.mode in ("n_time_bins", "n_event_bins"):
            return int(getattr(self, self.mode))
        return 1


# --------------------------------------------------------------------------------------------
# shared helpers


def _as_events(events: np.ndarray) -> np.ndarray:
    """EVENT_DTYPE view of ``events`` (no copy when it already is)."""
    if isinstance(events, np.ndarray) and events.dtype == EVENT_DTYPE:
        return events.reshape(-1)
    return to_event_array(events)


def _pixel_index(events: np.ndarray, sensor: SensorSize, origin: str, *, checked: bool = False) -> np.ndarray:
    """Flat ``(p, y, x)`` index per event (int64) after checking the events against the sensor
    (``checked``: the caller already validated them against ``sensor``).

    A single-polarity sensor accepts one polarity value per stream (either) and maps it to
    channel 0, like tonic; mixed polarities raise.
    """
    # int32 halves the memory traffic of this event-sized pass; the frame offsets added later
    # promote to int64 where needed
    polarity = events["p"].astype(np.int32 if sensor.num_features < 2**31 else np.int64)
    if sensor.polarities == 1:
        if len(events) and polarity.min() != polarity.max():
            raise ValueError(
                f"{origin}: single-polarity sensor {sensor}, but the events contain polarities "
                f"{np.unique(polarity).tolist()}; merge polarities first"
            )
        polarity = np.zeros_like(polarity)
        validate(events, SensorSize(sensor.width, sensor.height, 2), origin=origin)
    elif not checked:
        validate(events, sensor, origin=origin)
    # in place: one event-sized allocation (page faults dominate on large streams)
    polarity *= sensor.height
    polarity += events["y"]
    polarity *= sensor.width
    polarity += events["x"]
    return polarity


def pixel_index(
    events: np.ndarray, sensor_size: SensorSize, *, origin: str = "events", checked: bool = False
) -> np.ndarray:
    """Flat ``(p, y, x)`` index ``[N]`` of every event on ``sensor_size`` (the cell it adds to in a
    ``(P, H, W)`` frame); ``checked``: the events were already validated against the sensor."""
    return _pixel_index(_as_events(events), SensorSize.coerce(sensor_size), origin, checked=checked)


def _expand_ranges(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For index ranges ``[starts[k], ends[k])``: (range id, member index) of every member.

    Ranges may overlap (overlapping frames), so an event can appear under several range ids;
    the cost is linear in the total number of members.
    """
    lengths = np.maximum(ends - starts, 0)
    total = int(lengths.sum())
    range_id = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    first_member = np.cumsum(lengths) - lengths
    member = np.arange(total, dtype=np.int64) + np.repeat(starts - first_member, lengths)
    return range_id, member


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


def _searchsorted(t: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``np.searchsorted(t, values)`` (side left) for a sorted, possibly strided ``t``.

    numpy's searchsorted copies a non-contiguous array first (the ``t`` field of a structured
    event array is strided): an event-sized copy per call. This bisects all ``values`` at once
    instead, reading ``log2(len(t))`` elements per value.
    """
    if t.flags.c_contiguous or len(values) * 64 > len(t):
        return np.searchsorted(np.ascontiguousarray(t), values)
    values = np.asarray(values)
    lo = np.zeros(values.shape, dtype=np.int64)
    hi = np.full(values.shape, len(t), dtype=np.int64)
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = (lo + hi) // 2
        right = active & (t[np.minimum(mid, len(t) - 1)] < values)
        lo = np.where(right, mid + 1, lo)
        hi = np.where(active & ~right, mid, hi)


def _slice_bounds(t: np.ndarray, cfg: FrameSlicing) -> tuple[np.ndarray, np.ndarray]:
    """Event-index ranges ``[start_k, end_k)`` of every frame for a non-empty, sorted stream.

    The arithmetic (including numpy's int/float promotion) mirrors tonic's slicers, so the
    boundaries are the same numbers, not just the same in exact arithmetic.
    """
    n = len(t)
    if cfg.mode == "time_window":
        stride = cfg.time_window - cfg.overlap
        start = t[0] if cfg.start_time is None else cfg.start_time
        end = t[-1] if cfg.end_time is None else cfg.end_time
        ratio = (end - start - cfg.time_window) / stride
        n_slices = int(np.ceil(ratio) + 1) if cfg.include_incomplete else int(np.floor(ratio) + 1)
        window_starts = np.arange(max(n_slices, 1)) * stride + start
        return _searchsorted(t, window_starts), _searchsorted(t, window_starts + cfg.time_window)
    if cfg.mode == "event_count":
        count = min(cfg.event_count, n)
        stride = cfg.event_count - cfg.overlap
        ratio = (n - count) / stride
        n_slices = int(np.ceil(ratio) + 1) if cfg.include_incomplete else int(np.floor(ratio) + 1)
        starts = (np.arange(n_slices) * stride).astype(np.int64)
        return np.minimum(starts, n), np.minimum(starts + count, n)
    if cfg.mode == "n_time_bins":
        window = (t[-1] - t[0]) // cfg.n_time_bins * (1 + cfg.overlap)
        window_starts = np.arange(cfg.n_time_bins) * (window * (1 - cfg.overlap)) + t[0]
        return _searchsorted(t, window_starts), _searchsorted(t, window_starts + window)
    count = int(n // cfg.n_event_bins * (1 + cfg.overlap))
    starts = np.arange(cfg.n_event_bins, dtype=np.int64) * int(count * (1 - cfg.overlap))
    return np.minimum(starts, n), np.minimum(starts + count, n)


# --------------------------------------------------------------------------------------------
# frames


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

    ``checked=True`` skips :func:`validate` for events the caller has just validated against
    the same ``sensor_size`` (a dataset that validates each sample once on reading); events
    that were not validated give wrong counts or an IndexError instead of a clear error.
    """
    sensor = SensorSize.coerce(sensor_size)
    events = _as_events(events)
    pix = _pixel_index(events, sensor, "to_frame", checked=checked)
    if len(events) == 0:
        return np.zeros((slicing.empty_frames, *sensor.frame_shape), dtype=np.int16)
    starts, ends = _slice_bounds(events["t"], slicing)
    return _count_frames(pix, starts, ends, sensor.num_features).reshape(-1, *sensor.frame_shape)


def batch_frame_cells(
    t: np.ndarray, pixel: np.ndarray, counts: np.ndarray, slicing: FrameSlicing, frame_size: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Frame several streams straight into one time-first batch: where every counted event goes.

    Args:
        t: ``[N]`` timestamps (µs, integers) of ``B`` streams concatenated; each stream non-empty
            and sorted (validated by the caller).
        pixel: ``[N]`` flat ``(p, y, x)`` index of every event (as :func:`pixel_index` gives).
        counts: ``[B]`` events per stream, all > 0.
        frame_size: ``P * H * W``.

    Returns:
        ``cell [M]`` (int64): for every (frame, event) membership, the flat index into a
        ``[T_max, B, frame_size]`` batch (``T_max = n_frames.max()``), grouped by stream in order
        (an event in several overlapping frames is listed once per frame); ``n_frames [B]``; and
        the most events any one frame counts (a bound of every count: at most 255 means the
        counts fit uint8). ``np.add.at`` of int16 ones at ``cell`` into int16 zeros gives, for
        stream ``b``, exactly :func:`frame_events` in ``batch[:n_frames[b], b]`` (same slice
        formulas, same wrap-around) and zeros after it.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if len(counts) == 0 or counts.min() < 1 or int(counts.sum()) != len(t) or len(pixel) != len(t):
        raise ValueError(
            f"batch_frame_cells: expected non-empty streams whose counts sum to the {len(t)} events, "
            f"found counts {counts.tolist()} and {len(pixel)} pixels"
        )
    if _integral_back_to_back_windows(slicing):
        return _cells_of_back_to_back_windows(t, pixel, counts, slicing, frame_size)
    return _cells_stream_by_stream(t, pixel, counts, slicing, frame_size)


def _integral_back_to_back_windows(cfg: FrameSlicing) -> bool:
    """Time windows without overlap whose boundaries are whole µs counted from the first event:
    an event's frame is then ``(t - t_first) // time_window``, exactly tonic's searchsorted."""
    return (
        cfg.mode == "time_window"
        and cfg.overlap == 0
        and float(cfg.time_window).is_integer()
        and cfg.start_time is None
        and cfg.end_time is None
    )


def _cells_of_back_to_back_windows(
    t: np.ndarray, pixel: np.ndarray, counts: np.ndarray, cfg: FrameSlicing, frame_size: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`batch_frame_cells` for :func:`_integral_back_to_back_windows`, vectorised over streams
    (``np.repeat`` of per-stream values is several times cheaper than gathering them per event)."""
    first = np.cumsum(counts) - counts
    t_first, t_last = t[first], t[first + counts - 1]
    # the frame count of _slice_bounds, element-wise with the same dtypes (hence the same floats)
    ratio = (t_last - t_first - cfg.time_window) / (cfg.time_window - cfg.overlap)
    rounded = np.ceil(ratio) if cfg.include_incomplete else np.floor(ratio)
    n_frames = np.maximum((rounded + 1).astype(np.int64), 1)
    width = len(counts)
    cell = t - np.repeat(t_first, counts)
    cell //= int(cfg.time_window)  # the frame of every event
    inside = cell < np.repeat(n_frames, counts)  # events past the last whole window are not counted
    cell *= width
    cell += np.repeat(np.arange(width, dtype=np.int64), counts)  # now (frame, stream) row of [T, B]
    per_row = np.bincount(cell)  # events per row; the rows of uncounted events are masked out below
    per_row = np.pad(per_row, (0, -len(per_row) % width)).reshape(-1, width)
    counted_rows = np.arange(len(per_row))[:, None] < n_frames[None, :]
    max_frame_events = int(per_row[counted_rows].max(initial=0))
    cell *= frame_size
    cell += pixel
    return (cell if inside.all() else cell[inside]), n_frames, max_frame_events


def _cells_stream_by_stream(
    t: np.ndarray, pixel: np.ndarray, counts: np.ndarray, cfg: FrameSlicing, frame_size: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`batch_frame_cells` for any slicing: :func:`_slice_bounds` per stream."""
    cells = []
    n_frames = np.empty(len(counts), dtype=np.int64)
    offset, max_frame_events = 0, 0
    for b, count in enumerate(counts.tolist()):
        starts, ends = _slice_bounds(t[offset : offset + count], cfg)
        max_frame_events = max(max_frame_events, int(np.maximum(ends - starts, 0).max(initial=0)))
        frame, member = _expand_ranges(starts, ends)
        cell = frame * len(counts)
        cell += b
        cell *= frame_size
        cell += pixel[offset + member]
        cells.append(cell)
        n_frames[b] = len(starts)
        offset += count
    return np.concatenate(cells), n_frames, max_frame_events


def _torch_slice_bounds(
    t: torch.Tensor, first: torch.Tensor, n_events: torch.Tensor, cfg: FrameSlicing, n_frames: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample frame ranges ``[start, end)`` as ranks within each sample: two ``[B, K]`` tensors.

    Same formulas as :func:`_slice_bounds`, vectorised over the batch; frames past a sample's
    own frame count get empty ranges (zero padding at the end, as tonic's PadTensors does).
    """
    device = t.device
    batch = n_events.numel()
    nonempty = n_events > 0
    last = (first + n_events - 1).clamp(min=0)
    if t.numel():
        t_first = torch.where(nonempty, t[first.clamp(max=t.numel() - 1)], 0)
        t_last = torch.where(nonempty, t[last.clamp(max=t.numel() - 1)], 0)
    else:
        t_first = t_last = torch.zeros(batch, dtype=torch.int64, device=device)

    if cfg.mode in ("time_window", "n_time_bins"):
        # numpy promotes to float64 as soon as one option is a float; torch would pick float32
        # for (int tensor) * (python float), so the working dtype is chosen explicitly.
        is_float = any(
            isinstance(v, float) for v in (cfg.time_window, cfg.overlap, cfg.start_time, cfg.end_time)
        )
        work = torch.float64 if is_float else torch.int64
        if cfg.mode == "time_window":
            stride = cfg.time_window - cfg.overlap
            start = (
                t_first.to(work)
                if cfg.start_time is None
                else torch.full((batch,), cfg.start_time, dtype=work)
            )
            end = t_last.to(work) if cfg.end_time is None else torch.full((batch,), cfg.end_time, dtype=work)
            start, end = start.to(device), end.to(device)
            ratio = (end - start - cfg.time_window).double() / stride
            rounded = torch.ceil(ratio) if cfg.include_incomplete else torch.floor(ratio)
            n_slices = torch.where(nonempty, (rounded + 1).long().clamp(min=1), 1)
            stride_b = torch.full((batch,), stride, dtype=work, device=device)
            window = torch.full((batch,), cfg.time_window, dtype=work, device=device)
        else:
            n_slices = torch.full((batch,), cfg.n_time_bins, dtype=torch.int64, device=device)
            start = t_first
            window = torch.div(t_last - t_first, cfg.n_time_bins, rounding_mode="floor").to(work) * (
                1 + cfg.overlap
            )
            stride_b = window * (1 - cfg.overlap)
        n_cols = int(n_slices.max()) if n_frames is None else n_frames
        k = torch.arange(n_cols, device=device, dtype=stride_b.dtype)
        window_starts = k[None, :] * stride_b[:, None] + start[:, None]
        window_ends = window_starts + window[:, None]
        # Sorted per-sample time rows padded with +inf-like values, so searchsorted can run on
        # the whole batch at once; numpy compares int64 times with float boundaries as float64.
        dtype = window_starts.dtype
        pad_value = torch.inf if dtype.is_floating_point else torch.iinfo(torch.int64).max
        width = max(int(n_events.max()) if batch else 0, 1)
        rows = torch.full((batch, width), pad_value, dtype=dtype, device=device)
        if t.numel():
            sample = torch.repeat_interleave(
                torch.arange(batch, device=device), n_events, output_size=t.numel()
            )
            rank = torch.arange(t.numel(), device=device) - first[sample]
            rows[sample, rank] = t.to(dtype)
        starts = torch.searchsorted(rows, window_starts.contiguous())
        ends = torch.searchsorted(rows, window_ends.contiguous())
    else:
        n = n_events
        if cfg.mode == "event_count":
            count = n.clamp(max=cfg.event_count)
            stride = cfg.event_count - cfg.overlap
            ratio = (n - count).double() / stride
            rounded = torch.ceil(ratio) if cfg.include_incomplete else torch.floor(ratio)
            n_slices = torch.where(nonempty, (rounded + 1).long(), 1)
            n_cols = int(n_slices.max()) if n_frames is None else n_frames
            k = torch.arange(
                n_cols, device=device, dtype=torch.float64 if isinstance(stride, float) else torch.int64
            )
            starts = (k * stride).long()[None, :].expand(batch, -1)
        else:
            count = (
                torch.div(n, cfg.n_event_bins, rounding_mode="floor").double() * (1 + cfg.overlap)
            ).long()
            stride_b = (count.double() * (1 - cfg.overlap)).long()
            n_slices = torch.full((batch,), cfg.n_event_bins, dtype=torch.int64, device=device)
            n_cols = cfg.n_event_bins if n_frames is None else n_frames
            starts = torch.arange(n_cols, device=device)[None, :] * stride_b[:, None]
        ends = torch.minimum(starts + count[:, None], n[:, None])
        starts = torch.minimum(starts, n[:, None])
    in_range = torch.arange(starts.shape[1], device=device)[None, :] < n_slices[:, None]
    return torch.where(in_range, starts, 0), torch.where(in_range, ends, 0)


def to_frame_torch(
    x: torch.Tensor,
    y: torch.Tensor,
    t: torch.Tensor,
    p: torch.Tensor,
    batch_index: torch.Tensor,
    sensor_size: SensorSize | tuple[int, int, int],
    batch_size: int,
    *,
    time_window: float | None = None,
    event_count: int | None = None,
    n_time_bins: int | None = None,
    n_event_bins: int | None = None,
    overlap: float = 0,
    include_incomplete: bool = False,
    start_time: float | None = None,
    end_time: float | None = None,
    n_frames: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Frames for a whole batch of event streams on any device -> ``[T, B, P, H, W]``.

    Layout: the batch's events concatenated, as flat 1-D tensors of equal length ``N``
    (``x``, ``y``, ``t`` in µs, ``p``) plus ``batch_index`` (sample id of each event, in
    ``[0, batch_size)``). Events must be grouped by sample in increasing ``batch_index`` and
    sorted by ``t`` within a sample -- exactly what concatenating per-sample streams gives. (We
    chose this over padded ``[B, N_max]`` tensors: no padding memory, and one sample with many
    events does not inflate the others.)

    Per sample the frames equal :func:`to_frame` with the same options (all four modes).
    Samples with fewer frames than the longest one are zero-padded at the end; ``n_frames``
    fixes ``T`` instead (extra frames dropped, missing ones zero), which also avoids a
    device->host sync for the frame count.

    Returns:
        ``[T, B, P, H, W]`` tensor of ``dtype`` (float32 by default, what SNNs consume).
    """
    cfg = FrameSlicing(
        time_window, event_count, n_time_bins, n_event_bins, overlap, include_incomplete, start_time, end_time
    )
    sensor = SensorSize.coerce(sensor_size)
    if batch_size < 1 or (n_frames is not None and n_frames < 1):
        raise ValueError(
            f"to_frame_torch: batch_size and n_frames must be >= 1; found {batch_size}, {n_frames}"
        )
    tensors = {"x": x, "y": y, "t": t, "p": p, "batch_index": batch_index}
    sizes = {name: tuple(v.shape) for name, v in tensors.items()}
    if len(set(sizes.values())) != 1 or x.dim() != 1:
        raise EventFormatError(
            f"to_frame_torch: x, y, t, p, batch_index must be 1-D of one length; found {sizes}"
        )
    device = x.device
    xs, ys, ts, ps, bs = (v.to(device=device, dtype=torch.int64) for v in (x, y, t, p, batch_index))
    n_total = xs.numel()
    if n_total:
        if bs.min() < 0 or bs.max() >= batch_size:
            raise EventFormatError(
                f"to_frame_torch: batch_index must lie in [0, {batch_size}); "
                f"found [{int(bs.min())}, {int(bs.max())}]"
            )
        step_b, step_t = bs.diff(), ts.diff()
        unordered = (step_b < 0) | ((step_b == 0) & (step_t < 0))
        if unordered.any():
            i = int(torch.nonzero(unordered)[0]) + 1
            raise EventFormatError(
                "to_frame_torch: events must be grouped by increasing batch_index and sorted by t within a "
                f"sample; order breaks at index {i} ({int(unordered.sum())} place(s))"
            )
    n_events = torch.bincount(bs, minlength=batch_size)
    first = torch.cumsum(n_events, 0) - n_events
    if sensor.polarities == 1:
        if n_total:
            p_min = torch.full((batch_size,), 1 << 30, device=device).scatter_reduce(0, bs, ps, "amin")
            p_max = torch.full((batch_size,), -(1 << 30), device=device).scatter_reduce(0, bs, ps, "amax")
            if ((p_min != p_max) & (n_events > 0)).any():
                raise ValueError(
                    f"to_frame_torch: single-polarity sensor {sensor}, but a sample mixes polarities"
                )
        ps = torch.zeros_like(ps)
    for name, values, high in (
        ("x", xs, sensor.width),
        ("y", ys, sensor.height),
        ("p", ps, sensor.polarities),
    ):
        if n_total and (values.min() < 0 or values.max() >= high):
            raise EventFormatError(
                f"to_frame_torch: {name} must lie in [0, {high}) for sensor {sensor}; found "
                f"[{int(values.min())}, {int(values.max())}]"
            )

    starts, ends = _torch_slice_bounds(ts, first, n_events, cfg, n_frames)
    n_cols = starts.shape[1]
    frame_size = sensor.num_features
    lengths = (ends - starts).clamp(min=0).reshape(-1)
    total = int(lengths.sum())
    # (b, k) of every (event, frame) membership, then the event's global index.
    range_id = torch.repeat_interleave(
        torch.arange(lengths.numel(), device=device), lengths, output_size=total
    )
    first_member = torch.cumsum(lengths, 0) - lengths
    sample, frame = range_id // n_cols, range_id % n_cols
    rank = torch.arange(total, device=device) - first_member[range_id] + starts.reshape(-1)[range_id]
    event = first[sample] + rank
    pix = (ps[event] * sensor.height + ys[event]) * sensor.width + xs[event]
    flat = (frame * batch_size + sample) * frame_size + pix
    counts = torch.bincount(flat, minlength=n_cols * batch_size * frame_size)
    return counts.reshape(n_cols, batch_size, *sensor.frame_shape).to(dtype)


# --------------------------------------------------------------------------------------------
# voxel grid, stacked histogram


# Events per block of the voxel-grid pass. Its scratch arrays (~70 bytes per event) are reused
# from block to block and stay cache-resident; event-sized temporaries would be page-faulted
# afresh on every call, which costs more than the arithmetic.
_VOXEL_BLOCK = 32_768
# Integer times below 2**53 convert to float64 exactly: the float times are then sorted iff the
# integer times are, so the order check can run on the float times computed anyway.
_FLOAT_EXACT = 2**53


@dataclass(frozen=True)
class _TimeScale:
    """tonic's ``τ = T·(t − t_first)/(t_last − t_first)`` with its float operations in its order."""

    t_first: float
    n_bins: float
    span: float  # 0.0 for a stream spanning no time: τ = 0 everywhere then

    def shifted(self, t: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``float64(t) − t_first``."""
        return np.subtract(t, self.t_first, out=out)

    def tau_in_place(self, shifted: np.ndarray) -> np.ndarray:
        """``shifted`` (from :meth:`shifted`) turned into τ in place."""
        np.multiply(shifted, self.n_bins, out=shifted)
        if self.span:
            np.divide(shifted, self.span, out=shifted)
        return shifted


def _bin_starts(t: np.ndarray, scale: _TimeScale, n_bins: int) -> list[int]:
    """First event index with ``τ ≥ b`` for ``b = 0 … T``: ``T + 1`` non-decreasing values.

    τ is evaluated with tonic's formula on a coarse sample (every ``step``-th event) to bracket
    each start, then on the ``step − 1`` events inside each bracket, so a start is exact without
    computing τ for the whole stream (``step ≈ √(n/T)`` balances the two). Assumes sorted times
    (τ non-decreasing); for unsorted times the values are only clamped into order, and the pass
    that uses them rejects the stream.
    """
    n = len(t)
    step = max(2, math.isqrt(n // n_bins))
    thresholds = np.arange(1, n_bins + 1, dtype=np.float64)
    coarse = scale.tau_in_place(scale.shifted(t[::step]))
    # the first sample with τ >= b is sample `above` (>= 1: sample 0 has τ = 0): the start lies
    # in ((above - 1)·step, above·step], decided by the step - 1 events in between
    above = np.maximum(np.searchsorted(coarse, thresholds), 1)
    first = (above - 1) * step + 1
    window = first[:, None] + np.arange(step - 1)
    tau = scale.tau_in_place(scale.shifted(t[np.minimum(window, n - 1)]))
    below = (tau < thresholds[:, None]) & (window < n)
    starts = np.minimum(first + below.sum(axis=1), n)
    return [0, *np.maximum.accumulate(starts).tolist()]


def _bin_groups(starts: list[int], n_bins: int) -> list[tuple[int, int]]:
    """Consecutive bins ``[b0, b1)`` whose events make one block: whole bins, at most
    ``_VOXEL_BLOCK`` events unless one bin alone has more."""
    groups, b0 = [], 0
    while b0 < n_bins:
        b1 = b0 + 1
        while b1 < n_bins and starts[b1 + 1] - starts[b0] <= _VOXEL_BLOCK:
            b1 += 1
        groups.append((b0, b1))
        b0 = b1
    return groups


class _VoxelScratch:
    """Block-sized arrays reused by every block of one :func:`voxel_grid` call, carved from one
    allocation (one allocator call instead of twelve). ``pix`` and ``right`` come in two sets,
    alternated per block, because the right parts of a block's last bin are added only after the
    next block's left parts."""

    _LAYOUT = (
        ("time", np.float64),  # t − t_first, then τ, then frac(τ), then the left weights
        ("sign", np.float64),
        ("right0", np.float64),
        ("right1", np.float64),
        ("pix0", np.intp),
        ("pix1", np.intp),
        ("cell", np.intp),
        ("xy", np.uint32),
        ("x", np.uint32),
        ("y", np.uint32),
        ("p", np.int8),
        ("increasing", np.bool_),
    )

    def __init__(self, size: int) -> None:
        # 8-byte multiples keep every carved array aligned
        rounded = -(-size // 8) * 8
        memory = np.empty(sum(np.dtype(kind).itemsize for _, kind in self._LAYOUT) * rounded, np.uint8)
        offset = 0
        for name, kind in self._LAYOUT:
            nbytes = np.dtype(kind).itemsize * rounded
            setattr(self, name, memory[offset : offset + nbytes].view(kind))
            offset += nbytes
        self.right = (self.right0, self.right1)
        self.pix = (self.pix0, self.pix1)


def _load_block(
    fields: tuple[np.ndarray, ...],
    start: int,
    stop: int,
    sensor: SensorSize,
    scale: _TimeScale,
    check_order: bool,
    scratch: _VoxelScratch,
) -> bool:
    """Copy events ``[start, stop)`` into ``scratch`` (x, y, p, ``t − t_first``) and check them
    against the contract; False when any of them (or the order across ``start``) breaks it."""
    xys, ts, ps = fields
    size = stop - start
    shifted = scale.shifted(ts[start:stop], out=scratch.time[:size])
    if check_order and (
        (start and ts[start - 1] > ts[start])
        or np.less(shifted[1:], shifted[:-1], out=scratch.increasing[: size - 1]).any()
    ):
        return False
    xy = scratch.xy[:size]
    np.copyto(xy, xys[start:stop])  # x and y in one strided read: x the low, y the high half
    x, y, p = scratch.x[:size], scratch.y[:size], scratch.p[:size]
    np.bitwise_and(xy, 0xFFFF, out=x)
    np.right_shift(xy, 16, out=y)
    np.copyto(p, ps[start:stop])
    # as unsigned, a negative int16 / int8 is larger than any bound
    return x.max() < sensor.width and y.max() < sensor.height and p.view(np.uint8).max() < 2


def _reject(events: np.ndarray, sensor: SensorSize) -> None:
    """Raise :func:`validate`'s error for a stream that failed a check of the voxel pass."""
    validate(events, sensor, origin="voxel_grid")
    raise AssertionError("voxel_grid: a block check failed but validate() accepts the stream")


def _whole_stream_grid(events: np.ndarray, sensor: SensorSize, n_bins: int) -> np.ndarray:
    """The voxel grid ``(T, H·W)`` of a short, validated, non-empty stream in one pass.

    One bincount over (all left parts, then all right parts): per cell the same addition order
    as tonic's two sequential ``np.add.at``. Parts that tonic drops (bin >= T) land in two spare
    bins past the end, cut off after (adding them elsewhere never changes the kept sums). Below
    ``_VOXEL_BLOCK`` events the event-sized temporaries are small, and one pass beats the
    block-wise one's fixed costs.
    """
    n, plane = len(events), sensor.width * sensor.height
    t = events["t"]
    span = t[-1] - t[0]
    tau = t.astype(float)  # n_bins * (t - t_first) / span, in place (same float operations and order)
    tau -= t[0]
    tau *= n_bins
    if span:
        tau /= span
    sign = np.where(events["p"] > 0, 1.0, -1.0)
    bins = tau.astype(np.int64)
    frac = tau - bins
    index = np.empty(2 * n, dtype=np.int64)
    left_index, right_index = index[:n], index[n:]
    np.multiply(bins, plane, out=left_index)
    left_index += events["y"].astype(np.int64) * sensor.width
    left_index += events["x"]
    np.add(left_index, plane, out=right_index)
    weight = np.empty(2 * n)
    np.subtract(1.0, frac, out=weight[:n])
    weight[:n] *= sign
    np.multiply(sign, frac, out=weight[n:])
    grid = np.bincount(index, weights=weight, minlength=(n_bins + 2) * plane)[: n_bins * plane]
    return grid.reshape(n_bins, plane)


# x and y (int16) packed little-endian in the first 4 bytes of an EVENT_DTYPE record
_XY_VIEW = np.dtype({"names": ["xy"], "formats": ["<u4"], "offsets": [0], "itemsize": EVENT_DTYPE.itemsize})


def voxel_grid(
    events: np.ndarray, sensor_size: SensorSize | tuple[int, int, int], n_time_bins: int
) -> np.ndarray:
    """Event volume with bilinear weights in time (Zhu et al. 2019) -> float64 ``(T, 1, H, W)``.

    Times map to ``τ = T·(t − t_first)/(t_last − t_first)``; an event adds ``±(1 − frac(τ))`` to
    bin ``⌊τ⌋`` and ``±frac(τ)`` to the next bin (bins ``≥ T`` dropped, so events at ``t_last``
    add nothing), with polarity 1 -> +1 and 0 -> −1. Bit-identical to tonic's ``ToVoxelGrid``
    for integer polarity; for bool polarity tonic counts every event positive, here polarity is
    cast to signed first. A stream spanning zero time puts everything in bin 0 (tonic divides by
    zero); an empty stream gives zeros.

    How the float sums keep tonic's order: tonic adds all left parts, then all right parts, each
    in stream order, so a cell of bin ``b`` gets the left parts of bin ``b``'s events, then the
    right parts of bin ``b − 1``'s events. Times are sorted, so each bin's events are one
    contiguous run (its start found with tonic's exact τ formula). A long stream is processed in
    blocks of whole bins (~32k events, cache-sized scratch reused, no event-sized temporaries):
    each block adds its left parts, then the held-back right parts of the previous block's last
    bin, then its other right parts, each with a sequential ``np.bincount`` / ``np.add.at``. The
    event checks of :func:`validate` run on the same block copies; any failure raises
    :func:`validate`'s own error. A stream of at most ``_VOXEL_BLOCK`` events is one block: it
    is validated and summed in a single bincount over (all left parts; all right parts).
    """
    sensor = SensorSize.coerce(sensor_size)
    if sensor.polarities != 2:
        raise ValueError(f"voxel_grid: needs a 2-polarity sensor (signed events); found {sensor}")
    if not isinstance(n_time_bins, int | np.integer) or n_time_bins <= 0:
        raise ValueError(f"voxel_grid: n_time_bins must be a positive integer, found {n_time_bins!r}")
    plane = sensor.width * sensor.height
    if plane > 2**32:  # pixel indices are computed in uint32
        raise ValueError(f"voxel_grid: at most 2**32 pixels per bin, found {sensor} ({plane} pixels)")
    n_bins = int(n_time_bins)
    events = _as_events(events)
    n = len(events)
    if n <= _VOXEL_BLOCK:  # one block: a single pass over the whole stream is cheaper
        validate(events, sensor, origin="voxel_grid")
        grid = _whole_stream_grid(events, sensor, n_bins) if n else np.zeros((n_bins, plane))
        return grid.reshape(n_bins, 1, sensor.height, sensor.width)
    grid = np.empty((n_bins, plane))
    t = events["t"]
    fields = (events.view(_XY_VIEW)["xy"], t, events["p"])
    t_first, t_last = int(t[0]), int(t[-1])
    # Outside [0, 2**53) or with t_first > t_last the float order check is not exact (or the
    # stream is invalid anyway): validate everything up front (raises for invalid streams).
    check_order = 0 <= t_first <= t_last < _FLOAT_EXACT
    if not check_order:
        validate(events, sensor, origin="voxel_grid")
    scale = _TimeScale(float(t_first), float(n_bins), float(t_last - t_first))
    starts = _bin_starts(t, scale, n_bins)
    groups = _bin_groups(starts, n_bins)
    size = max(1, max(starts[b1] - starts[b0] for b0, b1 in groups))
    scratch = _VoxelScratch(size)
    flat = grid.reshape(-1)
    held: tuple[np.ndarray, np.ndarray] | None = None  # (pixel, weight): right parts of the last bin
    for number, (b0, b1) in enumerate(groups):
        start, stop = starts[b0], starts[b1]
        count = stop - start
        if count and not _load_block(fields, start, stop, sensor, scale, check_order, scratch):
            _reject(events, sensor)
        if b1 - b0 > 1:
            grid[b0:b1].fill(0.0)  # just before the scattered adds: the rows are then cache-hot
        frac = scale.tau_in_place(scratch.time[:count])
        single = b1 - b0 == 1
        if single:  # every event of the block has ⌊τ⌋ = b0
            np.subtract(frac, b0, out=frac)
        else:
            cell = scratch.cell[:count]
            np.copyto(cell, frac, casting="unsafe")  # ⌊τ⌋ (τ >= 0), as tonic's astype(int)
            np.subtract(frac, cell, out=frac)
        signs = scratch.p[:count]  # polarity 0/1 -> -1/+1 in place, then as float
        np.multiply(signs, 2, out=signs)
        np.subtract(signs, 1, out=signs)
        sign = scratch.sign[:count]
        np.copyto(sign, signs)
        right = scratch.right[number % 2][:count]
        np.multiply(frac, sign, out=right)
        # sign·(1 − frac) bit for bit: ±1 ∓ frac rounds symmetrically; frac is not needed after
        left = np.subtract(sign, right, out=frac)
        x, y = scratch.x[:count], scratch.y[:count]
        np.multiply(y, sensor.width, out=y)
        np.add(y, x, out=y)
        pix = scratch.pix[number % 2][:count]
        np.copyto(pix, y)
        if single:
            grid[b0] = np.bincount(pix, left, minlength=plane)
        else:
            np.multiply(cell, plane, out=cell)
            np.add(cell, pix, out=cell)
            np.add.at(flat, cell, left)
        if held is not None:
            np.add.at(grid[b0], *held)
        # right parts into bins b0 + 1 … b1 − 1 (their left parts are in); the last bin's wait
        inner = starts[b1 - 1] - start
        if inner:
            np.add(cell[:inner], plane, out=cell[:inner])
            np.add.at(flat, cell[:inner], right[:inner])
        held = (pix[inner:], right[inner:]) if b1 < n_bins and count > inner else None
    # events with τ >= T (at t_last) add nothing, but must pass the checks too
    for start in range(starts[n_bins], n, size):
        if not _load_block(fields, start, min(start + size, n), sensor, scale, check_order, scratch):
            _reject(events, sensor)
    return grid.reshape(n_bins, 1, sensor.height, sensor.width)


def stacked_histogram(
    events: np.ndarray,
    sensor_size: SensorSize | tuple[int, int, int],
    n_bins: int,
    *,
    event_count: int | None = None,
    start_time: int | None = None,
    end_time: int | None = None,
    count_cutoff: int | None = None,
    channel_order: Literal["polarity_major", "bin_major"] | None = None,
    dtype: np.dtype | type = np.float32,
) -> np.ndarray:
    """Per-bin, per-polarity event counts (RVT / hybrid_pose "stacked histogram").

    Selection: events with ``start_time <= t < end_time`` (µs, each optional), then the last
    ``event_count`` of those if given (hybrid_pose's CNN input: the 7500 events before the
    reference time). Bin of an event: ``⌊n_bins·(t − t_first)/(t_last − t_first)⌋`` clamped to
    ``n_bins − 1``, with ``t_first``/``t_last`` the first and last *selected* event (not the
    window edges), computed in exact integer arithmetic; a zero time span puts all in bin 0.
    Counts are raw; ``count_cutoff`` clamps them (RVT; hybrid_pose's clamp is a no-op: None).

    Returns:
        ``(n_bins, P, H, W)`` when ``channel_order`` is None; ``(P·n_bins, H, W)`` with channel
        ``p·n_bins + b`` for ``"polarity_major"`` (hybrid_pose's 20-channel CNN input), or
        ``(n_bins·P, H, W)`` with channel ``b·P + p`` for ``"bin_major"`` (RVT).
    """
    sensor = SensorSize.coerce(sensor_size)
    if not isinstance(n_bins, int | np.integer) or n_bins <= 0:
        raise ValueError(f"stacked_histogram: n_bins must be a positive integer, found {n_bins!r}")
    if event_count is not None and event_count <= 0:
        raise ValueError(f"stacked_histogram: event_count must be > 0, found {event_count!r}")
    if channel_order not in (None, "polarity_major", "bin_major"):
        raise ValueError(
            "stacked_histogram: channel_order must be None, 'polarity_major' or 'bin_major'; "
            f"found {channel_order!r}"
        )
    events = _as_events(events)
    pix = _pixel_index(events, sensor, "stacked_histogram")
    t = events["t"]
    lo = 0 if start_time is None else int(np.searchsorted(t, start_time, side="left"))
    hi = len(t) if end_time is None else int(np.searchsorted(t, end_time, side="left"))
    if event_count is not None:
        lo = max(lo, hi - event_count)
    t, pix = t[lo:hi], pix[lo:hi]
    frame_size = sensor.num_features
    if len(t):
        span = max(int(t[-1] - t[0]), 1)
        bins = np.minimum((n_bins * (t - t[0])) // span, n_bins - 1)
        counts = np.bincount(bins * frame_size + pix, minlength=n_bins * frame_size)
    else:
        counts = np.zeros(n_bins * frame_size, dtype=np.int64)
    if count_cutoff is not None:
        counts = np.minimum(counts, count_cutoff)
    hist = counts.reshape(n_bins, *sensor.frame_shape).astype(dtype)
    if channel_order == "polarity_major":
        return np.ascontiguousarray(hist.transpose(1, 0, 2, 3)).reshape(-1, sensor.height, sensor.width)
    if channel_order == "bin_major":
        return hist.reshape(-1, sensor.height, sensor.width)
    return hist


# --------------------------------------------------------------------------------------------
# time surfaces and exponential traces


def _surfaces(
    t: np.ndarray, pix: np.ndarray, first_sample: np.ndarray, ref: np.ndarray, tau: float, sensor: SensorSize
) -> np.ndarray:
    """``exp(−(ref_k − last_t)/tau)`` with last_t the latest event seen by sample k per pixel.

    ``first_sample[j]`` is the first sample that sees event j (``>= len(ref)``: none); later
    samples see it too, which is a running maximum over the sample axis.
    """
    n_samples, frame_size = len(ref), sensor.num_features
    seen = first_sample < n_samples
    latest = np.full(n_samples * frame_size, -np.inf)
    np.maximum.at(latest, first_sample[seen] * frame_size + pix[seen], t[seen].astype(np.float64))
    surfaces = latest.reshape(n_samples, frame_size)
    running = np.full(frame_size, -np.inf)
    # A time loop with state (the running max), one cache-sized row at a time; the row then
    # becomes exp(−(ref − latest)/tau) in place, in tonic's operation order (bit-identical).
    for k, row in enumerate(surfaces):
        np.maximum(running, row, out=running)
        np.subtract(ref[k], running, out=row)
        np.negative(row, out=row)
        np.divide(row, tau, out=row)
        np.exp(row, out=row)
    return surfaces.reshape(n_samples, *sensor.frame_shape)


def time_surface(
    events: np.ndarray,
    sensor_size: SensorSize | tuple[int, int, int],
    *,
    tau: float,
    dt: float | None = None,
    sample_times: np.ndarray | None = None,
) -> np.ndarray:
    """Global exponential time surfaces -> float64 ``(T, P, H, W)`` in ``[0, 1]``.

    Value at sample time ``s`` and pixel ``(p, y, x)``: ``exp(−(s − t_last)/tau)`` with
    ``t_last`` the latest event there strictly before ``s``; 0 where there is none.

    - ``dt`` (µs): tonic ``ToTimesurface(dt, tau)`` semantics, identical values: the stream is
      cut into ``dt`` windows from the first event (``⌊(t_last − t_first − dt)/dt⌋ + 1`` of
      them, at least 1; events after the last full window are ignored) and surface ``i`` is
      read at ``t_first + (i + 1)·dt``.
    - ``sample_times`` (µs, ascending): read at exactly these times.

    ``tau`` is in µs. An empty stream gives zeros (one surface in ``dt`` mode).
    """
    sensor = SensorSize.coerce(sensor_size)
    if (dt is None) == (sample_times is None):
        raise ValueError("time_surface: give exactly one of dt (µs) or sample_times (µs)")
    if tau <= 0:
        raise ValueError(f"time_surface: tau must be > 0 µs, found {tau!r}")
    events = _as_events(events)
    pix = _pixel_index(events, sensor, "time_surface")
    t = events["t"]
    if sample_times is not None:
        ref = np.asarray(sample_times)
        if ref.ndim != 1 or (np.diff(ref) < 0).any():
            raise ValueError("time_surface: sample_times must be a 1-D ascending array of µs")
        return _surfaces(t, pix, np.searchsorted(ref, t, side="right"), ref, tau, sensor)
    if dt <= 0:
        raise ValueError(f"time_surface: dt must be > 0 µs, found {dt!r}")
    if len(t) == 0:
        return np.zeros((1, *sensor.frame_shape))
    starts, ends = _slice_bounds(t, FrameSlicing(time_window=dt))
    ref = (np.arange(len(ends)) + 1) * dt + t[0]
    # The window holding each event (len(ends): none). Windows are back to back unless float
    # rounding leaves a gap between them; tonic skips the events in such a gap, and so do we.
    first_sample = np.full(len(t), len(ends))
    if np.array_equal(starts[1:], ends[:-1]):
        first_sample[starts[0] : ends[-1]] = np.repeat(np.arange(len(ends)), ends - starts)
    else:
        window, event = _expand_ranges(starts, ends)
        np.minimum.at(first_sample, event, window)
    return _surfaces(t, pix, first_sample, ref, tau, sensor)


def exponential_filter_taps(decay: float) -> int:
    """Taps of a truncated exponential kernel: ``int(6·τ)`` with ``τ = 1/(1 − decay)`` steps.

    Evaluated in float like the original (``1 − 0.99`` is slightly above 0.01, so τ_m = 99.99…
    gives 599 taps, not 600).
    """
    if not 0 <= decay < 1:
        raise ValueError(f"decay must be in [0, 1), found {decay!r}")
    return int(6 * (1 / (1 - decay)))


def double_exponential_weights(n_steps: int, *, alpha: float, beta: float, scale: float = 50.0) -> np.ndarray:
    """Weight of each time step ``t = 0..n_steps−1`` in :func:`double_exponential_trace` -> ``[T]``.

    The hybrid guided VAE's reconstruction target (hgvae spec §2.2): two causal exponential
    filters in cascade, ``τ_s = 1/(1 − beta)`` then ``τ_m = 1/(1 − alpha)`` (time steps), each a
    kernel ``exp(−k/τ)``, ``k < int(6τ)``, normalised to sum 1 and applied with a one-step delay;
    the result is read at index ``T`` and multiplied by ``scale``. So step ``t`` weighs
    ``scale·(k_s ∗ k_m)[T − t − 2]``: the last step weighs 0.
    """
    kernels = []
    for decay in (beta, alpha):
        k = np.exp(-np.arange(exponential_filter_taps(decay)) / (1 / (1 - decay)))
        kernels.append(k / k.sum())
    cascade = np.convolve(kernels[0], kernels[1])
    lag = n_steps - 2 - np.arange(n_steps)  # index into the cascade for step t
    valid = (lag >= 0) & (lag < len(cascade))
    weights = np.zeros(n_steps)
    weights[valid] = cascade[lag[valid]]
    return scale * weights


def double_exponential_trace(
    frames: np.ndarray | torch.Tensor,
    *,
    alpha: float,
    beta: float,
    scale: float = 50.0,
    time_dim: int = 0,
) -> np.ndarray | torch.Tensor:
    """Final value of the double causal exponential filter over ``frames`` (hgvae target x*).

    Args:
        frames: counts with time on ``time_dim`` (e.g. ``[T, B, 2, 32, 32]``), numpy or torch.
        alpha: membrane decay of the last layer (τ_m = 1/(1 − alpha) steps).
        beta: synaptic decay of the last layer (τ_s = 1/(1 − beta) steps).
        scale: the original's ×50.

    Returns:
        ``frames`` with the time axis contracted by :func:`double_exponential_weights`
        (e.g. ``[B, 2, 32, 32]``), same library and float dtype (float64 for integer numpy).
    """
    n_steps = frames.shape[time_dim]
    weights = double_exponential_weights(n_steps, alpha=alpha, beta=beta, scale=scale)
    if isinstance(frames, torch.Tensor):
        dtype = frames.dtype if frames.dtype.is_floating_point else torch.get_default_dtype()
        w = torch.as_tensor(weights, dtype=dtype, device=frames.device)
        return torch.tensordot(w, frames.to(dtype), dims=([0], [time_dim]))
    frames = np.asarray(frames)
    dtype = frames.dtype if frames.dtype.kind == "f" else np.float64
    return np.tensordot(weights.astype(dtype), frames.astype(dtype, copy=False), axes=([0], [time_dim]))
