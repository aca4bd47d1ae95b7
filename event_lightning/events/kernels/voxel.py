"""Compiled voxel grid: check every event and add its bilinear weights in tonic's order, one pass.

Called by :func:`~event_lightning.events.represent.voxel.voxel_grid`; bit-identical to tonic 1.7's
``ToVoxelGrid`` (the same float operations, and per cell the same order of additions).
"""

from __future__ import annotations

import numpy as np
from numba import types

from event_lightning.events.kernels.compiler import EVENTS, jit


@jit(
    types.int64(
        EVENTS, types.Array(types.float64, 1, "C"), types.int64, types.int64, types.int64, types.float64, types.float64
    )
)
def add_voxel_weights(events, grid, n_bins, width, height, t_first, span):  # pragma: no cover - compiled
    """Add every event's ``±(1 − frac(τ))`` to bin ``⌊τ⌋`` and ``±frac(τ)`` to the next bin of
    ``grid`` (float64 ``[n_bins·H·W]``, uninitialised: each bin's row is zeroed just before its
    first add; bins ``>= n_bins`` dropped), with ``τ = n_bins·(float(t) − t_first) / span`` (no
    division when ``span == 0``) and polarity 1 -> +1, 0 -> −1.

    tonic adds all left parts, then all right parts, each in stream order, so a cell of bin ``b``
    sums the left parts of bin ``b``'s events, then the right parts of bin ``b − 1``'s. Times are
    sorted, so each bin's events are one run: bin by bin, the run's left parts are added while its
    events are checked (the run ends at the first event with ``τ >= b + 1``), then the right parts
    of the run before it (read again while still in cache, τ recomputed by the same operations).
    Each bin's loop is short and keeps one grid row in cache. Every event is checked as
    :func:`~event_lightning.events.core.validate` checks it (polarity in {0, 1}), in stream order,
    before it adds anything; τ is non-decreasing for checked events, so every index lies in the
    grid.

    Returns:
        -1 when every event passed, else the index of the first event that failed.
    """
    n = len(events)
    plane = width * height
    scale = float(n_bins)
    previous_t = 0  # the first time must be >= 0
    i = 0  # the next event to check
    previous_run = 0  # first event of bin b − 1's run
    for b in range(n_bins):
        run = i
        row = grid[b * plane : (b + 1) * plane]
        row[:] = 0.0  # zeroed here, not by the caller: the row is then in cache for the adds below
        upper = b + 1.0
        while i < n:
            e = events[i]
            # seen as unsigned, a negative value is out of range too: one test per field
            if np.uint16(e.x) >= width or np.uint16(e.y) >= height or np.uint8(e.p) > 1 or e.t < previous_t:
                return i
            tau = scale * (float(e.t) - t_first)
            if span != 0.0:
                tau = tau / span
            if tau >= upper:  # the first event of a later bin: checked again by that bin's loop
                break
            previous_t = e.t
            # float(2p - 1): a branch on random polarities would be mispredicted half the time
            row[e.y * width + e.x] += float(2 * e.p - 1) * (1.0 - (tau - b))
            i += 1
        if b > 0:  # bin b has all its left parts: add bin b − 1's right parts
            for j in range(previous_run, run):
                r = events[j]
                tau = scale * (float(r.t) - t_first)
                if span != 0.0:
                    tau = tau / span
                row[r.y * width + r.x] += float(2 * r.p - 1) * (tau - (b - 1))
        previous_run = run
    for j in range(i, n):  # events with τ >= n_bins (at t_last) add nothing, but are checked too
        e = events[j]
        if np.uint16(e.x) >= width or np.uint16(e.y) >= height or np.uint8(e.p) > 1 or e.t < previous_t:
            return j
        previous_t = e.t
    return -1
