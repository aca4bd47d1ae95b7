"""Deterministic per-pixel filters, equal to tonic 1.7's: :func:`denoise` and :func:`refractory_period`.

tonic's filters loop over events in Python; here the same sequential rules run compiled, one pass
over the events (:mod:`event_lightning.events.kernels.filters`). Where the compiled kernels cannot
load, they are vectorised in numpy (block tables, sorts and searchsorted calls; same outputs).
"""

from __future__ import annotations

import itertools
from types import ModuleType
from typing import Literal

import numpy as np

from event_lightning.events.augment.common import Range, _as_events, _draw, _sorted_events
from event_lightning.events.core import EVENT_DTYPE, EventFormatError
from event_lightning.events.kernels.loading import compiled_kernels


def _group_by_pixel(x: np.ndarray, y: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Stable order by pixel (time order kept inside a pixel) and the sorted pixel ids."""
    pix = y.astype(np.int64) * width + x.astype(np.int64)
    order = np.argsort(pix, kind="stable")
    return order, pix[order]


def _checked_events(
    events: np.ndarray, origin: str, kernels: ModuleType | None
) -> tuple[np.ndarray, tuple[int, int] | None]:
    """The events as :data:`EVENT_DTYPE`, checked (``x, y >= 0``, sorted by t; else
    :func:`_sorted_events`'s error), and with the compiled kernels their bounding box
    ``(max x + 1, max y + 1)``, found in the same pass (None without them)."""
    if kernels is None:
        return _sorted_events(events, origin), None
    events = _as_events(events)
    bad, max_x, max_y = kernels.check_and_box(events)
    if bad >= 0:
        _sorted_events(events, origin)
        raise AssertionError(f"{origin}: the compiled check rejected events that _sorted_events accepts")
    return events, (max_x + 1, max_y + 1)


def _kept_records(events: np.ndarray, keep: np.ndarray, kept: int, kernels: ModuleType) -> np.ndarray:
    """The ``kept`` records marked in ``keep``, copied by the compiled kernel (no index array)."""
    out = np.empty(kept, dtype=EVENT_DTYPE)
    kernels.copy_kept(events, keep, out)
    return out


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

    tonic's rule runs compiled, one pass over the events with its per-pixel table
    (:func:`~event_lightning.events.kernels.filters.denoise_keep`); without the compiled kernels,
    :func:`_denoise_keep_numpy` vectorises it.
    """
    if connectivity not in (4, 8):
        raise ValueError(f"denoise: connectivity must be 4 or 8, found {connectivity!r}")
    kernels = compiled_kernels("filters")
    events, box = _checked_events(events, "denoise", kernels)
    if len(events) == 0:
        return events.copy()
    t = events["t"]
    if t[0] < 0:
        raise EventFormatError(f"denoise: timestamps must be >= 0 µs; found t={int(t[0])} at index 0")
    if not filter_time > 0:  # memory t_j + F > t_i needs F > t_i - t_j >= 0; the start value F > t_i >= 0
        return events[:0].copy()
    if kernels is None:
        return np.compress(_denoise_keep_numpy(events, filter_time, connectivity), events)
    width, height = box
    # tonic's table over the bounding box, every pixel starting at filter_time, inside a border
    # of -inf that is never recent
    memory = np.full((height + 2, width + 2), -np.inf)
    memory[1:-1, 1:-1] = filter_time
    keep = np.empty(len(events), dtype=bool)
    kept = kernels.denoise_keep(events, memory.reshape(-1), width + 2, float(filter_time), connectivity == 8, keep)
    return _kept_records(events, keep, kept, kernels)


def _denoise_keep_numpy(events: np.ndarray, filter_time: float, connectivity: int) -> np.ndarray:
    """:func:`denoise`'s kept events ``[N]`` (bool) in numpy, for a checked, non-empty stream
    with ``t[0] >= 0`` and ``filter_time > 0``.

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
    n = len(events)
    t = events["t"]
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
    return keep


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
    kernels = compiled_kernels("filters")
    events, box = _checked_events(events, "refractory_period", kernels)
    if len(events) == 0:
        return events.copy()
    if kernels is None:
        return np.compress(_refractory_keep_numpy(events, delta, reference), events)
    width, height = box
    keep = np.empty(len(events), dtype=bool)
    if reference == "event":  # tonic's table over the bounding box, every pixel starting at -delta
        kept = kernels.refractory_keep(events, np.full(width * height, -float(delta)), width, float(delta), keep)
    else:
        no_event = np.full(width * height, np.iinfo(np.int64).min)
        kept = kernels.dead_time_keep(events, no_event, width, float(delta), keep)
    return _kept_records(events, keep, kept, kernels)


def _refractory_keep_numpy(events: np.ndarray, delta: float, reference: str) -> np.ndarray:
    """:func:`refractory_period`'s kept events ``[N]`` (bool) in numpy, for a checked, non-empty
    stream: the events grouped by pixel (stable sort), each compared with its predecessor there
    (``reference="event"``) or followed along dead-time chains (``"kept"``)."""
    n = len(events)
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
    return keep


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
