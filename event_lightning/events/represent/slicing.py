"""Where the frames of a stream start and end: the slicing options and their event-index ranges.

:class:`FrameSlicing` checks the options of :func:`~event_lightning.events.represent.frames.to_frame`
once; :func:`_slice_bounds` turns them into event-index ranges ``[start_k, end_k)`` with tonic 1.7's
formulas. Everything that cuts a stream in time shares these: per-sample and batched numpy frames
and time surfaces (:mod:`~event_lightning.events.represent.frames_torch` has the same formulas in
torch, vectorised over a batch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from event_lightning.events.kernels.loading import compiled_kernels

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


def _searchsorted(t: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``np.searchsorted(t, values)`` (side left) for a sorted, possibly strided ``t``.

    numpy's searchsorted copies a non-contiguous array first (the ``t`` field of a structured
    event array is strided): an event-sized copy per call. The compiled kernel bisects ``t`` in
    place; without it, all ``values`` are bisected at once in numpy, reading ``log2(len(t))``
    elements per value.
    """
    values = np.asarray(values)
    kernels = compiled_kernels("search")
    if kernels is not None and t.dtype == np.int64 and values.dtype in (np.int64, np.float64) and values.ndim == 1:
        out = np.empty(len(values), dtype=np.int64)
        kernels.searchsorted_left(t, np.ascontiguousarray(values), out)
        return out
    if t.flags.c_contiguous or len(values) * 64 > len(t):
        return np.searchsorted(np.ascontiguousarray(t), values)
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
