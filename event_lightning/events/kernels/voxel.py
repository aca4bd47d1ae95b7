"""Compiled voxel grid: check every event and add its bilinear weights in tonic's order, one pass.

Called by :func:`~event_lightning.events.represent.voxel.voxel_grid`; bit-identical to tonic 1.7's
``ToVoxelGrid`` (the same float operations, and per cell the same order of additions).
"""

from __future__ import annotations

import numpy as np
from numba import types

from event_lightning.events.kernels.compiler import EVENTS, jit

_RIGHTS = types.Array(types.float64, 2, "C")
_CELLS = types.Array(types.uint32, 2, "C")


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
    previous_t = 0  # the first time must be >= 0
    run = 0  # first event of bin b's run
    previous_run = 0  # first event of bin b − 1's run
    for b in range(n_bins):
        row = grid[b * plane : (b + 1) * plane]
        row[:] = 0.0  # zeroed here, not by the caller: the row is then in cache for the adds below
        right, right_cell = rights[b % 2], cells[b % 2]
        # the run ends at the first event with τ >= b + 1: bisected, so that the adds below run in
        # a counted loop (τ by the same operations; any order found for unsorted times is safe,
        # since the loop still checks every event in stream order and rejects the stream)
        upper, end, hi = b + 1.0, run, n
        while end < hi:
            mid = (end + hi) // 2
            if scale * (float(events[mid].t) - t_first) / divisor < upper:
                end = mid + 1
            else:
                hi = mid
        for i in range(run, end):
            e = events[i]
            # seen as unsigned, a negative value is out of range too; `|`, not `or`: one branch
            if (np.uint16(e.x) >= width) | (np.uint16(e.y) >= height) | (np.uint8(e.p) > 1) | (e.t < previous_t):
                return i
            previous_t = e.t
            tau = scale * (float(e.t) - t_first) / divisor
            # float(2p - 1): a branch on random polarities would be mispredicted half the time
            sign = float(2 * e.p - 1)
            frac = tau - b
            # unsigned: no negative-index wrap-around test per add
            cell = np.uint32(np.uint16(e.y)) * np.uint32(width) + np.uint32(np.uint16(e.x))
            row[cell] += sign * (1.0 - frac)
            if i - run < kept:
                right[i - run] = sign * frac
                right_cell[i - run] = cell
        if b > 0:  # bin b has all its left parts: add bin b − 1's right parts, in stream order
            right, right_cell = rights[(b - 1) % 2], cells[(b - 1) % 2]
            for k in range(min(run - previous_run, kept)):
                row[right_cell[k]] += right[k]
            for j in range(previous_run + kept, run):
                r = events[j]
                tau = scale * (float(r.t) - t_first) / divisor
                row[r.y * width + r.x] += float(2 * r.p - 1) * (tau - (b - 1))
        previous_run, run = run, end
    for j in range(run, n):  # events with τ >= n_bins (at t_last) add nothing, but are checked too
        e = events[j]
        if (np.uint16(e.x) >= width) | (np.uint16(e.y) >= height) | (np.uint8(e.p) > 1) | (e.t < previous_t):
            return j
        previous_t = e.t
    return -1
