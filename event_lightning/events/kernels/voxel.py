"""Compiled voxel grid: check every event and add its bilinear weights in tonic's order, one pass.

Called by :func:`~event_lightning.events.represent.voxel.voxel_grid`; bit-identical to tonic 1.7's
``ToVoxelGrid`` (the same float operations, and per cell the same order of additions).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

from event_lightning.events.kernels.compiler import EVENTS, jit

_RIGHTS = types.Array(types.float64, 2, "C")
_CELLS = types.Array(types.uint32, 2, "C")


# Helpers inlined into the kernel below (numba IR inlining): compiled, and cached, with it. Record
# indices are unsigned throughout, so that no index pays numba's negative-index wrap-around and
# the record address is one pointer increment per event.


@numba.njit(inline="always")
def _breaks_contract(e, width, height, previous_t):  # pragma: no cover - compiled
    """Whether record ``e`` fails :func:`~event_lightning.events.core.validate`'s checks (polarity
    in {0, 1}, times non-decreasing after ``previous_t``): seen as unsigned, a negative value is out
    of range too; ``|``, not ``or``: no short-circuit branches in the source."""
    return (np.uint16(e.x) >= width) | (np.uint16(e.y) >= height) | (np.uint8(e.p) > 1) | (e.t < previous_t)


@numba.njit(inline="always")
def _cell(e, width):  # pragma: no cover - compiled
    """The record's cell in its bin's row, unsigned (no negative-index wrap-around test per add)."""
    return np.uint32(np.uint16(e.y)) * np.uint32(width) + np.uint32(np.uint16(e.x))


@numba.njit(inline="always")
def _add_left_parts(
    events, start, stop, row, bin_start, time_scale, size, previous_t, keep, right, right_cell
):  # pragma: no cover - compiled
    """Check events ``[start, stop)`` of bin ``bin_start``'s run and add their left parts to ``row``;
    with ``keep`` (a constant at each call, so each call compiles to its own loop without the test)
    also store their right parts and cells at ``right[i − start]`` / ``right_cell[i − start]``
    (``start`` is then the run's first event). ``time_scale``: (n_bins, t_first, span or 1);
    ``size``: (width, height). Returns (first failing index or −1, the last time checked)."""
    scale, t_first, divisor = time_scale
    width, height = size
    for i in range(np.uint64(start), np.uint64(stop)):
        e = events[i]
        if _breaks_contract(e, width, height, previous_t):
            return np.int64(i), previous_t
        previous_t = e.t
        frac = scale * (float(e.t) - t_first) / divisor - bin_start
        # float(2p - 1): a branch on random polarities would be mispredicted half the time
        sign = float(2 * np.int64(e.p) - 1)
        cell = _cell(e, width)
        row[cell] += sign * (1.0 - frac)
        if keep:
            right[i - np.uint64(start)] = sign * frac
            right_cell[i - np.uint64(start)] = cell
    return np.int64(-1), previous_t


@jit(
    types.int64(
        EVENTS,
        types.Array(types.float64, 1, "C"),
        types.int64,
        types.int64,
        types.int64,
        types.float64,
        types.float64,
        _RIGHTS,
        _CELLS,
    )
)
def add_voxel_weights(events, grid, n_bins, width, height, t_first, span, rights, cells):  # pragma: no cover - compiled
    """Add every event's ``±(1 − frac(τ))`` to bin ``⌊τ⌋`` and ``±frac(τ)`` to the next bin of
    ``grid`` (float64 ``[n_bins·H·W]``, uninitialised: each bin's row is zeroed just before its
    first add; bins ``>= n_bins`` dropped), with ``τ = n_bins·(float(t) − t_first) / span`` (no
    division when ``span == 0``: every τ is 0 then, as dividing 0 by 1 gives) and polarity
    1 -> +1, 0 -> −1.

    tonic adds all left parts, then all right parts, each in stream order, so a cell of bin ``b``
    sums the left parts of bin ``b``'s events, then the right parts of bin ``b − 1``'s. Times are
    sorted, so each bin's events are one run: bin by bin, the run's left parts are added while its
    events are checked (the run ends at the first event with ``τ >= b + 1``, found by bisection),
    then the right parts of the run before it. Those were computed with the left parts and kept,
    for the first ``K`` events of a run, in ``rights [2, K]`` / ``cells [2, K]`` (scratch, one
    row per run alternately); later events of a long run are read again and their τ recomputed
    by the same operations. Each bin's loops keep one grid row in cache. Every event is checked
    as :func:`~event_lightning.events.core.validate` checks it (polarity in {0, 1}), in stream
    order, before it adds anything, so every cell lies in its row.

    Returns:
        -1 when every event passed, else the index of the first event that failed.
    """
    n = len(events)
    plane = width * height
    scale = float(n_bins)
    divisor = span if span != 0.0 else 1.0
    kept = rights.shape[1]
    time_scale, size = (scale, t_first, divisor), (width, height)
    previous_t = 0  # the first time must be >= 0
    run = 0  # first event of bin b's run
    previous_run = 0  # first event of bin b − 1's run
    for b in range(n_bins):
        row = grid[b * plane : (b + 1) * plane]
        row[:] = 0.0  # zeroed here, not by the caller: the row is then in cache for the adds below
        # the run ends at the first event with τ >= b + 1: bisected, so that the adds below run in
        # counted loops (τ by the same operations; any order found for unsorted times is safe,
        # since the loops still check every event in stream order and reject the stream)
        upper, end, hi = b + 1.0, run, n
        while end < hi:
            mid = (end + hi) // 2
            if scale * (float(events[mid].t) - t_first) / divisor < upper:
                end = mid + 1
            else:
                hi = mid
        # the first K events keep their right parts, the others' are recomputed below: two loops,
        # so that no event tests which it is
        stored = min(end, run + kept)
        kept_right, kept_cell = rights[b % 2], cells[b % 2]
        failed, previous_t = _add_left_parts(
            events, run, stored, row, b, time_scale, size, previous_t, True, kept_right, kept_cell
        )
        if failed < 0:
            failed, previous_t = _add_left_parts(
                events, stored, end, row, b, time_scale, size, previous_t, False, kept_right, kept_cell
            )
        if failed >= 0:
            return failed
        if b > 0:  # bin b has all its left parts: add bin b − 1's right parts, in stream order
            right, right_cell = rights[(b - 1) % 2], cells[(b - 1) % 2]
            for k in range(min(run - previous_run, kept)):
                row[right_cell[k]] += right[k]
            for j in range(np.uint64(previous_run + kept), np.uint64(run)):
                r = events[j]
                frac = scale * (float(r.t) - t_first) / divisor - (b - 1)
                row[_cell(r, width)] += float(2 * np.int64(r.p) - 1) * frac
        previous_run, run = run, end
    # events with τ >= n_bins (at t_last) add nothing, but are checked too
    for j in range(np.uint64(run), np.uint64(n)):
        e = events[j]
        if _breaks_contract(e, width, height, previous_t):
            return np.int64(j)
        previous_t = e.t
    return -1
