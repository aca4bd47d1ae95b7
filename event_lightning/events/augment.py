"""Event -> event augmentations and filters, vectorised, with explicit random generators.

Each function takes one sample (:data:`EVENT_DTYPE`, or any structured array with x, y, t, p,
converted by name), never modifies its input, and returns a new time-sorted event array;
transforms that change the geometry (crops, downsampling) also return the new
:class:`SensorSize`. Randomness comes only from the ``rng`` (:class:`numpy.random.Generator`)
argument, so a data loader worker can seed it per sample.

Deterministic filters reproduce tonic 1.7 exactly (same kept events): :func:`denoise` ==
``Denoise``, :func:`refractory_period` == ``RefractoryPeriod``, :func:`downsample` ==
``Downsample``, :func:`center_crop` == ``CenterCrop``, and the flips at ``p`` = 0 or 1. tonic's
filters loop over events in Python; here they are sorts and searchsorted calls.

The frozen dataclasses at the end wrap the functions behind one signature,
``transform(events, sensor_size, rng) -> (events, sensor_size)``, so a pipeline can be listed
in a config and chained with :class:`Compose`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from event_lightning.events.core import EVENT_DTYPE, EventFormatError, SensorSize, to_event_array

Range = float | tuple[float, float]
Transformed = tuple[np.ndarray, SensorSize]


def _as_events(events: np.ndarray) -> np.ndarray:
    """EVENT_DTYPE view of ``events`` (no copy when it already is)."""
    if isinstance(events, np.ndarray) and events.dtype == EVENT_DTYPE:
        return events.reshape(-1)
    return to_event_array(events)


def _sorted_events(events: np.ndarray, origin: str) -> np.ndarray:
    """EVENT_DTYPE events with non-negative coordinates, sorted by time (else EventFormatError)."""
    events = _as_events(events)
    if len(events):
        if events["x"].min() < 0 or events["y"].min() < 0:
            raise EventFormatError(f"{origin}: event coordinates must be >= 0")
        t = events["t"]
        backwards = np.less(t[1:], t[:-1])
        if backwards.any():
            i = int(np.flatnonzero(backwards)[0]) + 1
            raise EventFormatError(f"{origin}: events must be sorted by t; order breaks at index {i}")
    return events


def _draw(value: Range, rng: np.random.Generator | None, name: str) -> float:
    """A fixed value, or one drawn uniformly from a ``(low, high)`` range."""
    if isinstance(value, tuple | list):
        if len(value) != 2 or value[0] > value[1]:
            raise ValueError(f"{name}: a range must be (low, high) with low <= high, found {value!r}")
        if rng is None:
            raise ValueError(f"{name}: a range {value!r} needs an rng to draw from")
        return float(rng.uniform(value[0], value[1]))
    return value


# np.compress(mask, events) below: the same records as events[mask], 5x faster for the packed
# (unaligned) EVENT_DTYPE


def _with_fields(events: np.ndarray, keep: np.ndarray | slice, **fields: np.ndarray) -> np.ndarray:
    """Copy of ``events[keep]`` with some fields replaced (values already filtered by ``keep``)."""
    out = events[keep].copy() if isinstance(keep, slice) else np.compress(keep, events)
    for name, values in fields.items():
        out[name] = values
    return out


# --------------------------------------------------------------------------------------------
# flips


def flip_lr(
    events: np.ndarray, sensor_size: SensorSize | tuple, rng: np.random.Generator, *, p: float = 0.5
) -> np.ndarray:
    """With probability ``p``, mirror left-right: ``x' = W − 1 − x``."""
    sensor = SensorSize.coerce(sensor_size)
    out = _as_events(events).copy()
    if rng.random() < p:
        out["x"] = sensor.width - 1 - out["x"]
    return out


def flip_ud(
    events: np.ndarray, sensor_size: SensorSize | tuple, rng: np.random.Generator, *, p: float = 0.5
) -> np.ndarray:
    """With probability ``p``, mirror up-down: ``y' = H − 1 − y``."""
    sensor = SensorSize.coerce(sensor_size)
    out = _as_events(events).copy()
    if rng.random() < p:
        out["y"] = sensor.height - 1 - out["y"]
    return out


def flip_polarity(events: np.ndarray, rng: np.random.Generator, *, p: float = 0.5) -> np.ndarray:
    """With probability ``p``, swap ON and OFF for the whole sample: ``p' = 1 − p`` (as tonic)."""
    out = _as_events(events).copy()
    if rng.random() < p:
        out["p"] = 1 - out["p"]
    return out


# --------------------------------------------------------------------------------------------
# crops and resolution


def crop(
    events: np.ndarray, sensor_size: SensorSize | tuple, *, x0: int, y0: int, width: int, height: int
) -> tuple[np.ndarray, SensorSize]:
    """Keep the box ``[x0, x0 + width) × [y0, y0 + height)`` and re-base it to the origin.

    A negative ``x0``/``y0`` (box larger than the sensor) pads: events shift right/down.
    Returns the events and ``SensorSize(width, height, P)``.
    """
    sensor = SensorSize.coerce(sensor_size)
    cropped = SensorSize(width, height, sensor.polarities)
    events = _as_events(events)
    x, y = events["x"].astype(np.int64), events["y"].astype(np.int64)
    keep = (x >= x0) & (x < x0 + width) & (y >= y0) & (y < y0 + height)
    return _with_fields(events, keep, x=x[keep] - x0, y=y[keep] - y0), cropped


def _size_pair(size: int | tuple[int, int], name: str) -> tuple[int, int]:
    """``(width, height)`` from an int (square) or a pair."""
    if isinstance(size, int | np.integer):
        return int(size), int(size)
    if len(size) != 2:
        raise ValueError(f"{name}: size is an int or (width, height), found {size!r}")
    return int(size[0]), int(size[1])


def center_crop(
    events: np.ndarray, sensor_size: SensorSize | tuple, size: int | tuple[int, int]
) -> tuple[np.ndarray, SensorSize]:
    """Centred crop to ``size`` = ``(width, height)`` (or a square int); padding if larger.

    Offsets ``(W − width) // 2`` and ``(H − height) // 2`` like tonic's ``CenterCrop``.
    """
    sensor = SensorSize.coerce(sensor_size)
    width, height = _size_pair(size, "center_crop")
    x0, y0 = (sensor.width - width) // 2, (sensor.height - height) // 2
    return crop(events, sensor, x0=x0, y0=y0, width=width, height=height)


def random_crop(
    events: np.ndarray, sensor_size: SensorSize | tuple, size: int | tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, SensorSize]:
    """Crop a ``(width, height)`` box at a uniformly drawn position inside the sensor.

    Every position is possible (tonic's ``int(rand()·(W − w))`` never picks the last one).
    """
    sensor = SensorSize.coerce(sensor_size)
    width, height = _size_pair(size, "random_crop")
    if width > sensor.width or height > sensor.height:
        raise ValueError(f"random_crop: size {(width, height)} exceeds the sensor {sensor}")
    x0 = int(rng.integers(0, sensor.width - width + 1))
    y0 = int(rng.integers(0, sensor.height - height + 1))
    return crop(events, sensor, x0=x0, y0=y0, width=width, height=height)


def downsample(
    events: np.ndarray,
    sensor_size: SensorSize | tuple,
    *,
    spatial_factor: float | tuple[float, float] = 1,
    time_factor: float = 1,
    target_size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, SensorSize]:
    """Scale coordinates and timestamps, truncating like tonic's ``Downsample`` (no event dropped).

    ``x' = trunc(x·fx)``, ``y' = trunc(y·fy)``, ``t' = trunc(t·time_factor)``; ``target_size``
    ``(W', H')`` sets ``fx = W'/W``, ``fy = H'/H`` and overrides ``spatial_factor``.

    Returns:
        the events and the new sensor (``target_size``, else ``trunc((W − 1)·fx) + 1`` by
        ``trunc((H − 1)·fy) + 1``: the smallest sensor holding every mapped pixel).
    """
    sensor = SensorSize.coerce(sensor_size)
    if target_size is not None:
        fx, fy = np.asarray(target_size) / np.asarray([sensor.width, sensor.height])
    elif isinstance(spatial_factor, tuple | list):
        fx, fy = spatial_factor
    else:
        fx = fy = spatial_factor
    if fx <= 0 or fy <= 0 or time_factor <= 0:
        raise ValueError(f"downsample: factors must be > 0, found spatial {(fx, fy)}, time {time_factor}")
    events = _as_events(events)
    # every field is written, so no copy of the records first (half the time); assigning the
    # float products truncates toward zero as tonic's field assignment does
    out = np.empty(len(events), dtype=EVENT_DTYPE)
    out["x"] = events["x"] * fx
    out["y"] = events["y"] * fy
    out["t"] = events["t"] * time_factor if time_factor != 1 else events["t"]
    out["p"] = events["p"]
    if target_size is not None:
        new_sensor = SensorSize(int(target_size[0]), int(target_size[1]), sensor.polarities)
    else:
        new_sensor = SensorSize(
            int((sensor.width - 1) * fx) + 1, int((sensor.height - 1) * fy) + 1, sensor.polarities
        )
    return out, new_sensor


# --------------------------------------------------------------------------------------------
# jitter


def spatial_jitter(
    events: np.ndarray,
    sensor_size: SensorSize | tuple,
    rng: np.random.Generator,
    *,
    var_x: float = 1,
    var_y: float = 1,
    sigma_xy: float = 0,
    outliers: Literal["drop", "clamp"] = "drop",
) -> np.ndarray:
    """Add Gaussian shifts with covariance ``[[var_x, sigma_xy], [sigma_xy, var_y]]`` (pixels²).

    Shifts are rounded to the nearest pixel (tonic truncates towards zero, which biases
    towards the origin). Events pushed off the sensor are dropped or clamped to its edge.
    """
    sensor = SensorSize.coerce(sensor_size)
    if outliers not in ("drop", "clamp"):
        raise ValueError(f"spatial_jitter: outliers must be 'drop' or 'clamp', found {outliers!r}")
    events = _as_events(events)
    shifts = rng.multivariate_normal([0.0, 0.0], [[var_x, sigma_xy], [sigma_xy, var_y]], size=len(events))
    x = events["x"] + np.rint(shifts[:, 0]).astype(np.int64)
    y = events["y"] + np.rint(shifts[:, 1]).astype(np.int64)
    if outliers == "clamp":
        return _with_fields(
            events, slice(None), x=np.clip(x, 0, sensor.width - 1), y=np.clip(y, 0, sensor.height - 1)
        )
    keep = (x >= 0) & (x < sensor.width) & (y >= 0) & (y < sensor.height)
    return _with_fields(events, keep, x=x[keep], y=y[keep])


def time_jitter(
    events: np.ndarray,
    rng: np.random.Generator,
    *,
    std: float,
    negative: Literal["drop", "clamp"] = "drop",
) -> np.ndarray:
    """Add rounded Gaussian noise of ``std`` µs to every timestamp, then re-sort (stable).

    Timestamps pushed below 0 are dropped (tonic's ``clip_negative``) or clamped to 0.
    """
    if negative not in ("drop", "clamp"):
        raise ValueError(f"time_jitter: negative must be 'drop' or 'clamp', found {negative!r}")
    events = _as_events(events)
    t = events["t"] + np.rint(rng.normal(0.0, std, size=len(events))).astype(np.int64)
    if negative == "clamp":
        out = _with_fields(events, slice(None), t=np.maximum(t, 0))
    else:
        out = _with_fields(events, t >= 0, t=t[t >= 0])
    return out[np.argsort(out["t"], kind="stable")]


# --------------------------------------------------------------------------------------------
# dropping


def drop_event(events: np.ndarray, rng: np.random.Generator, *, p: Range) -> np.ndarray:
    """Drop exactly ``int(p·N + 0.5)`` events chosen uniformly (``p`` or a ``(low, high)`` range)."""
    ratio = _draw(p, rng, "drop_event")
    if not 0 <= ratio <= 1:
        raise ValueError(f"drop_event: p must be in [0, 1], found {ratio!r}")
    events = _as_events(events)
    keep = np.ones(len(events), dtype=bool)
    keep[rng.choice(len(events), int(ratio * len(events) + 0.5), replace=False)] = False
    return np.compress(keep, events)


def drop_by_time(events: np.ndarray, rng: np.random.Generator, *, duration_ratio: Range = 0.2) -> np.ndarray:
    """Drop every event in one random interval of ``duration_ratio`` × the stream's duration.

    The interval ``[s, s + d]`` (both ends included, like tonic) lies inside
    ``[t_first, t_last]``; tonic measures from t = 0 instead of the first event.
    """
    ratio = _draw(duration_ratio, rng, "drop_by_time")
    if not 0 <= ratio < 1:
        raise ValueError(f"drop_by_time: duration_ratio must be in [0, 1), found {ratio!r}")
    events = _as_events(events)
    if len(events) == 0:
        return events.copy()
    t = events["t"]
    duration = (int(t[-1]) - int(t[0])) * ratio
    start = rng.uniform(t[0], t[-1] - duration)
    return np.compress(~((t >= start) & (t <= start + duration)), events)


def drop_by_area(
    events: np.ndarray, sensor_size: SensorSize | tuple, rng: np.random.Generator, *, area_ratio: Range = 0.2
) -> np.ndarray:
    """Drop every event inside one random box of ``int(W·r) × int(H·r)`` pixels (as tonic)."""
    sensor = SensorSize.coerce(sensor_size)
    ratio = _draw(area_ratio, rng, "drop_by_area")
    if not 0 <= ratio < 1:
        raise ValueError(f"drop_by_area: area_ratio must be in [0, 1), found {ratio!r}")
    events = _as_events(events)
    cut_w, cut_h = int(sensor.width * ratio), int(sensor.height * ratio)
    x0 = int(rng.integers(0, sensor.width - cut_w))
    y0 = int(rng.integers(0, sensor.height - cut_h))
    x, y = events["x"], events["y"]
    inside = (x >= x0) & (x < x0 + cut_w) & (y >= y0) & (y < y0 + cut_h)
    return np.compress(~inside, events)


# --------------------------------------------------------------------------------------------
# filters (tonic-exact)


def _group_by_pixel(x: np.ndarray, y: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Stable order by pixel (time order kept inside a pixel) and the sorted pixel ids."""
    pix = y.astype(np.int64) * width + x.astype(np.int64)
    order = np.argsort(pix, kind="stable")
    return order, pix[order]


_DENOISE_TABLE_CELLS = 1 << 16
"""Cells (block rows x padded sensor pixels) of the table :func:`denoise` keeps at once: small
enough to stay in a core's cache (measured fastest here: 4x larger tables were ~1.2x slower)."""


def _neighbour_offsets(connectivity: int, row_stride: int) -> list[int]:
    """Flat offsets of the 4 (or 8) neighbours in a table whose pixel rows are ``row_stride`` long."""
    steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if connectivity == 8:
        steps += [(-1, -1), (1, -1), (-1, 1), (1, 1)]
    return [dy * row_stride + dx for dx, dy in steps]


def denoise(events: np.ndarray, filter_time: float, *, connectivity: Literal[4, 8] = 4) -> np.ndarray:
    """Keep an event if a neighbouring pixel had an event less than ``filter_time`` µs before it.

    Same kept events as tonic's ``Denoise(filter_time)`` (``connectivity=4``: the pixels left,
    right, above and below; the pixel itself does not count, polarity is ignored), including
    its conventions: "before" means earlier in the (time-sorted) stream, so same-time events
    count in stream order, and every pixel inside the stream's bounding box
    ``[0, max x] × [0, max y]`` starts as if it had an event at t = 0, so events with
    ``t < filter_time`` survive whenever that box has more than one pixel. ``connectivity=8``
    adds the diagonals. ``filter_time <= 0`` keeps nothing (as in tonic, for timestamps >= 0).

    Vectorised over blocks of ``w = max(1, floor(filter_time))`` µs: an earlier neighbour event
    in the same block is always recent enough (for ``filter_time < 1`` a block is one timestamp
    and tonic's float test ``t + filter_time > t`` decides), the latest one in the previous
    occupied block is recent if its time says so, and one in any older block never is. A table
    over ``[block, padded pixel]`` holds, per cell, the first event index of the pixel in that
    block and the latest event index of the pixel in the block before; an event takes the
    minimum of the first and the maximum of the latest over its neighbours' cells, one lookup
    per neighbour. The padding pixel around the sensor is never written, so edge pixels need no
    masks. The table holds a few occupied blocks at a time: the loop runs over groups of blocks.
    """
    if connectivity not in (4, 8):
        raise ValueError(f"denoise: connectivity must be 4 or 8, found {connectivity!r}")
    events = _sorted_events(events, "denoise")
    n = len(events)
    if n == 0:
        return events.copy()
    t = events["t"]
    if t[0] < 0:
        raise EventFormatError(f"denoise: timestamps must be >= 0 µs; found t={int(t[0])} at index 0")
    if not filter_time > 0:  # memory t_j + F > t_i needs F > t_i - t_j >= 0; the start value F > t_i >= 0
        return events[:0].copy()
    x, y = events["x"], events["y"]
    width, height = int(x.max()) + 1, int(y.max()) + 1
    stride, plane = width + 2, (width + 2) * (height + 2)
    block = t - t[0]
    block //= max(1, int(filter_time))
    new_block = np.empty(n, dtype=bool)
    new_block[0] = True
    np.not_equal(block[1:], block[:-1], out=new_block[1:])
    block_starts = np.flatnonzero(new_block)  # occupied blocks only: empty stretches of time cost nothing
    rows = max(1, _DENOISE_TABLE_CELLS // plane)
    # cell of an event: row (occupied block number mod rows), then pixel y * stride + x
    cell = np.repeat((np.arange(len(block_starts)) % rows) * plane, np.diff(block_starts, append=n))
    pixel = y.astype(np.intp)
    pixel *= stride
    cell += pixel
    cell += x
    index_dtype = np.int32 if n < np.iinfo(np.int32).max else np.int64
    index = np.arange(n, dtype=index_dtype)
    time_or_none = np.empty(n + 1)  # index -1 (no event) reads -inf
    time_or_none[:n] = t
    time_or_none[n] = -np.inf
    time_f = time_or_none[:n]
    margin = stride + 1  # margin + offset >= 0 for every neighbour offset, so each neighbour is a view
    table = np.empty(2 * margin + (rows + 1) * plane, dtype=[("first", index_dtype), ("latest", index_dtype)])
    table["first"] = n
    table["latest"] = -1
    latest_all = table["latest"]
    first_of = table["first"][2 * margin :]  # cell 0 is padded pixel (1, 1) of row 0
    latest_below = latest_all[2 * margin + plane :]  # a block's latest events, seen from the next row
    around = [table[2 * margin + d :] for d in _neighbour_offsets(connectivity, stride)]
    carry_from, carry_to = slice(margin + rows * plane, margin + (rows + 1) * plane), slice(margin, margin + plane)
    # same block: recent when F >= 1; when F < 1 a block is one timestamp, decided as tonic's floats
    same_block_recent = None if filter_time >= 1 else time_f + filter_time > time_f
    keep = np.empty(n, dtype=bool)
    group_bounds = block_starts[::rows].tolist() + [n]
    for s, e in itertools.pairwise(group_bounds):
        c = cell[s:e]
        first_of[c[::-1]] = index[s:e][::-1]  # of a repeated cell, the last write (first event) stays
        latest_below[c] = index[s:e]
        near = around[0][c]
        earliest, newest = near["first"], near["latest"]
        for around_d in around[1:]:
            near_d = around_d[c]
            np.minimum(earliest, near_d["first"], out=earliest)
            np.maximum(newest, near_d["latest"], out=newest)
        kept = earliest < index[s:e]
        if same_block_recent is not None:
            kept &= same_block_recent[s:e]
        memory = time_or_none[newest]
        memory += filter_time
        kept |= memory > time_f[s:e]
        keep[s:e] = kept
        # next group: row 0 sees this group's last block; "latest" entries left in other rows are
        # older than the previous block, so never recent, and need no reset
        first_of[c] = n
        latest_all[carry_to] = latest_all[carry_from]
    if width * height > 1:  # every pixel of the box has a neighbour, whose start value F beats t < F
        keep |= time_f < filter_time
    return np.compress(keep, events)


def refractory_period(
    events: np.ndarray,
    delta: Range,
    *,
    rng: np.random.Generator | None = None,
    reference: Literal["event", "kept"] = "event",
) -> np.ndarray:
    """Drop events that follow another event at the same pixel (any polarity) within ``delta`` µs.

    ``reference="event"`` (default) is tonic's ``RefractoryPeriod``: an event survives if more
    than ``delta`` passed since the previous event at its pixel, kept or not; the first event
    at a pixel survives if ``t > 0`` (tonic starts every pixel at ``−delta``).
    ``reference="kept"`` is a true dead time: an event survives if more than ``delta`` passed
    since the last *surviving* event there; the first event at a pixel always survives.

    ``delta`` may be a ``(low, high)`` range drawn with ``rng`` (tonic truncates it to int).
    """
    if reference not in ("event", "kept"):
        raise ValueError(f"refractory_period: reference must be 'event' or 'kept', found {reference!r}")
    if isinstance(delta, tuple | list):
        delta = int(_draw(delta, rng, "refractory_period"))
    if delta < 0:
        raise ValueError(f"refractory_period: delta must be >= 0 µs, found {delta!r}")
    events = _sorted_events(events, "refractory_period")
    n = len(events)
    if n == 0:
        return events.copy()
    x, y, t = events["x"], events["y"], events["t"]
    order, sorted_pix = _group_by_pixel(x, y, int(x.max()) + 1)
    t_sorted = t[order]
    head = np.ones(n, dtype=bool)
    head[1:] = sorted_pix[1:] != sorted_pix[:-1]
    if reference == "event":
        previous = np.empty(n, dtype=np.float64)
        previous[0] = -delta
        previous[1:] = t_sorted[:-1]
        previous[head] = -delta
        keep_sorted = (t_sorted - previous) > delta
    else:
        keep_sorted = _dead_time_chains(t_sorted, head, delta)
    keep = np.zeros(n, dtype=bool)
    keep[order] = keep_sorted
    return np.compress(keep, events)


def _dead_time_chains(t_sorted: np.ndarray, head: np.ndarray, delta: float) -> np.ndarray:
    """Survivors of a per-pixel dead time, for events grouped by pixel and time-sorted inside.

    Each event's successor is the first later event of its pixel more than ``delta`` after it;
    the survivors are the successor chains from each pixel's first event. The chains are
    followed by pointer doubling (log2 N rounds), so there is no per-event loop.
    """
    n = len(t_sorted)
    group = np.cumsum(head) - 1
    group_end = np.flatnonzero(np.append(head[1:], True)) + 1  # one past each group's last event
    # Integer times: t_j − t_i > delta  <=>  t_j > t_i + floor(delta). Keys sort by (group, t).
    span = int(t_sorted.max()) - int(t_sorted.min()) + int(np.floor(delta)) + 2
    if (group[-1] + 1) * span >= np.iinfo(np.int64).max // 2:
        raise ValueError("refractory_period: recording too long for reference='kept'; split it in time")
    keys = group * span + (t_sorted - t_sorted.min())
    successor = np.searchsorted(keys, keys + int(np.floor(delta)), side="right")
    successor = np.where(successor < group_end[group], successor, n)
    jump = np.append(successor, n)  # index n is the sink
    reached = np.append(head.copy(), False)
    while True:
        reached[jump[np.flatnonzero(reached)]] = True
        reached[n] = False
        if (jump[:n] == n).all():
            break
        jump = jump[jump]
    return reached[:n]


# --------------------------------------------------------------------------------------------
# composable transforms


class EventTransform(Protocol):
    """``transform(events, sensor_size, rng) -> (events, sensor_size)``."""

    def __call__(
        self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator
    ) -> tuple[np.ndarray, SensorSize]: ...


@dataclass(frozen=True)
class FlipLR:
    """:func:`flip_lr` with probability ``p``."""

    p: float = 0.5

    def __call__(self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator) -> Transformed:
        return flip_lr(events, sensor_size, rng, p=self.p), SensorSize.coerce(sensor_size)


@dataclass(frozen=True)
class FlipUD:
    """:func:`flip_ud` with probability ``p``."""

    p: float = 0.5

    def __call__(self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator) -> Transformed:
        return flip_ud(events, sensor_size, rng, p=self.p), SensorSize.coerce(sensor_size)


@dataclass(frozen=True)
class FlipPolarity:
    """:func:`flip_polarity` with probability ``p``."""

    p: float = 0.5

    def __call__(self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator) -> Transformed:
        return flip_polarity(events, rng, p=self.p), SensorSize.coerce(sensor_size)


@dataclass(frozen=True)
class CenterCrop:
    """:func:`center_crop` to ``size`` (int or ``(width, height)``)."""

    size: int | tuple[int, int]

    def __call__(self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator) -> Transformed:
        return center_crop(events, sensor_size, self.size)


@dataclass(frozen=True)
class RandomCrop:
    """:func:`random_crop` to ``size`` (int or ``(width, height)``)."""

    size: int | tuple[int, int]

    def __call__(self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator) -> Transformed:
        return random_crop(events, sensor_size, self.size, rng)


@dataclass(frozen=True)
class Downsample:
    """:func:`downsample` by ``spatial_factor`` / ``time_factor``, or to ``target_size``."""

    spatial_factor: float | tuple[float, float] = 1
    time_factor: float = 1
    target_size: tuple[int, int] | None = None

    def __call__(self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator) -> Transformed:
        return downsample(
            events,
            sensor_size,
            spatial_factor=self.spatial_factor,
            time_factor=self.time_factor,
            target_size=self.target_size,
        )


@dataclass(frozen=True)
class SpatialJitter:
    """:func:`spatial_jitter` (variances in pixels²)."""

    var_x: float = 1
    var_y: float = 1
    sigma_xy: float = 0
    outliers: Literal["drop", "clamp"] = "drop"

    def __call__(self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator) -> Transformed:
        out = spatial_jitter(
            events,
            sensor_size,
            rng,
            var_x=self.var_x,
            var_y=self.var_y,
            sigma_xy=self.sigma_xy,
            outliers=self.outliers,
        )
        return out, SensorSize.coerce(sensor_size)


@dataclass(frozen=True)
class TimeJitter:
    """:func:`time_jitter` with ``std`` µs."""

    std: float
    negative: Literal["drop", "clamp"] = "drop"

    def __call__(self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator) -> Transformed:
        return time_jitter(events, rng, std=self.std, negative=self.negative), SensorSize.coerce(sensor_size)


@dataclass(frozen=True)
class DropEvent:
    """:func:`drop_event` with ratio ``p`` (or a range)."""

    p: Range = 0.1

    def __call__(self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator) -> Transformed:
        return drop_event(events, rng, p=self.p), SensorSize.coerce(sensor_size)


@dataclass(frozen=True)
class DropByTime:
    """:func:`drop_by_time` with ``duration_ratio`` (or a range)."""

    duration_ratio: Range = 0.2

    def __call__(self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator) -> Transformed:
        return drop_by_time(events, rng, duration_ratio=self.duration_ratio), SensorSize.coerce(sensor_size)


@dataclass(frozen=True)
class DropByArea:
    """:func:`drop_by_area` with ``area_ratio`` (or a range)."""

    area_ratio: Range = 0.2

    def __call__(self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator) -> Transformed:
        out = drop_by_area(events, sensor_size, rng, area_ratio=self.area_ratio)
        return out, SensorSize.coerce(sensor_size)


@dataclass(frozen=True)
class Denoise:
    """:func:`denoise` with ``filter_time`` µs."""

    filter_time: float
    connectivity: Literal[4, 8] = 4

    def __call__(self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator) -> Transformed:
        out = denoise(events, self.filter_time, connectivity=self.connectivity)
        return out, SensorSize.coerce(sensor_size)


@dataclass(frozen=True)
class RefractoryPeriod:
    """:func:`refractory_period` with ``delta`` µs (or a range)."""

    delta: Range
    reference: Literal["event", "kept"] = "event"

    def __call__(self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator) -> Transformed:
        out = refractory_period(events, self.delta, rng=rng, reference=self.reference)
        return out, SensorSize.coerce(sensor_size)


@dataclass(frozen=True)
class Compose:
    """Apply ``transforms`` in order, threading the sensor size through (crops change it)."""

    transforms: tuple[EventTransform, ...]

    def __call__(
        self, events: np.ndarray, sensor_size: SensorSize | tuple, rng: np.random.Generator
    ) -> tuple[np.ndarray, SensorSize]:
        sensor = SensorSize.coerce(sensor_size)
        events = _as_events(events)
        for transform in self.transforms:
            events, sensor = transform(events, sensor, rng)
        return events, sensor
