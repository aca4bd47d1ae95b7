"""Per-bin, per-polarity event counts (RVT, the hybrid pose CNN's input): :func:`stacked_histogram`."""

from __future__ import annotations

from typing import Literal

import numpy as np

from event_lightning.events.core import SensorSize
from event_lightning.events.represent.pixels import _as_events, _pixel_index


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
