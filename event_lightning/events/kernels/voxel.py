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
    ``grid`` (float64 ``[n_bins·H·W]``, zeroed by the caller; bins ``>= n_bins`` dropped), with
    ``τ = n_bins·(float(t) − t_first) / span`` (no division when ``span == 0``) and polarity
    1 -> +1, 0 -> −1.

    tonic adds all left parts, then all right parts, each in stream order, so a cell of bin ``b``
    sums the left parts of bin ``b``'s events, then the right parts of bin ``b − 1``'s. Times are
    sorted, so each bin's events are one run: when bin ``b``'s run ends, the right parts of the
    run before it (read again while still in cache, τ recomputed by the same operations) go into
    bin ``b``. Every event is checked as :func:`~event_lightning.events.core.validate` checks it
    (polarity in {0, 1}), in stream order, before it adds anything.

    Returns:
        -1 when every event passed, else the index of the first event that failed.
    """
    n = len(events)
    plane = width * height
    scale = float(n_bins)
    current = 0  # the bin whose left parts are being added
    run_start = 0  # first event of the current bin's run
    previous_run_start = 0  # first event of the run of bin current - 1
    previous_t = 0  # the first time must be >= 0
    for i in range(n + 1):
        if i < n:
            e = events[i]
            # seen as unsigned, a negative value is out of range too: one test per field
            if np.uint16(e.x) >= width or np.uint16(e.y) >= height or np.uint8(e.p) > 1 or e.t < previous_t:
                return i
            previous_t = e.t
            tau = scale * (float(e.t) - t_first)
            if span != 0.0:
                tau = tau / span
            # τ >= 0 and non-decreasing for checked events; the bounds keep every index inside
            # the grid regardless (no float-to-int overflow past the last bin)
            b = int(tau) if tau < scale else n_bins
            if b < current:
                return i
        else:
            b = n_bins  # past the last event: close every remaining bin
        while current < b and current < n_bins:
            if current > 0:  # bin `current` has all its left parts: add the previous run's right parts
                row = current * plane
                for j in range(previous_run_start, run_start):
                    r = events[j]
                    tau_j = scale * (float(r.t) - t_first)
                    if span != 0.0:
                        tau_j = tau_j / span
                    # float(2p - 1): a branch on random polarities would be mispredicted half the time
                    grid[row + r.y * width + r.x] += float(2 * r.p - 1) * (tau_j - int(tau_j))
            previous_run_start = run_start
            run_start = i
            current += 1
        if i < n and b < n_bins:
            grid[b * plane + e.y * width + e.x] += float(2 * e.p - 1) * (1.0 - (tau - b))
    return -1
