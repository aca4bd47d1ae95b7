"""Compiled frame counting: check, index and count every event in one pass (tonic's ``ToFrame``).

Called by :func:`~event_lightning.events.represent.frames.frame_events` with the frame bounds of
:func:`~event_lightning.events.represent.slicing._slice_bounds`: this module owns the counting,
not the slicing arithmetic.
"""

from __future__ import annotations

import numpy as np
from numba import types

from event_lightning.events.kernels.compiler import EVENTS, jit

_BOUNDS = types.Array(types.int64, 1, "C", readonly=True)


@jit(types.int64(EVENTS, _BOUNDS, _BOUNDS, types.Array(types.int16, 1, "C"), types.int64, types.int64, types.int64))
def count_frames(events, starts, ends, out, width, height, polarities):  # pragma: no cover - compiled
    """Count the events ``[starts[k], ends[k])`` into frame ``k`` of ``out`` while checking them.

    ``out`` is int16 ``[T·P·H·W]``, uninitialised: each frame is zeroed just before its events are
    counted into it, so the frames are written in order, each once, and the scattered increments
    land in the frame just zeroed, which is still in cache (P·H·W int16 cells: 64 KiB on a
    128x128 sensor). Counts wrap modulo 2**16 like tonic's int16 ``np.add.at``. The checks are
    :func:`~event_lightning.events.core.validate`'s (``0 <= x < width``, ``0 <= y < height``,
    ``0 <= p < polarities``, ``t[0] >= 0``, times non-decreasing); with ``polarities == 1`` the
    stream may hold one polarity value in {0, 1}, counted into channel 0, as tonic. Every event is
    checked once, in stream order, also those no frame counts; the first that fails stops the
    pass before it is counted.

    Returns:
        -1 when every event passed, else the index of the first event that failed (the caller
        raises validate's error; ``out`` is then incomplete).
    """
    n = len(events)
    single = polarities == 1
    p_limit = 2 if single else polarities
    first_p = events[0].p if n else 0
    frame_size = polarities * height * width
    checked = 0  # events [0, checked) passed; they are checked in order, one after the other
    previous_t = 0  # t of event checked - 1 (0 before the first: the first time must be >= 0)
    n_frames = len(starts)
    for k in range(n_frames + 1):
        # check the events up to the end of frame k (after the last frame: to the end of the
        # stream) that no earlier frame reached, before any of frame k's is counted
        stop = min(max(ends[k], starts[k], 0), n) if k < n_frames else n
        for i in range(checked, stop):
            e = events[i]
            # seen as unsigned, a negative value is out of range too; `|`, not `or`: one branch
            if (
                (np.uint16(e.x) >= width)
                | (np.uint16(e.y) >= height)
                | (np.uint8(e.p) >= p_limit)
                | (e.t < previous_t)
                | (single & (e.p != first_p))
            ):
                return i
            previous_t = e.t
        checked = max(checked, stop)
        if k == n_frames:
            break
        frame = out[k * frame_size : (k + 1) * frame_size]
        frame[:] = 0
        # the counting loop on its own, checks done: unsigned cells (no negative-index wrap-around)
        for i in range(min(max(starts[k], 0), n), stop):
            e = events[i]
            channel = np.uint64(0) if single else np.uint64(np.uint8(e.p))
            frame[(channel * np.uint64(height) + np.uint64(np.uint16(e.y))) * np.uint64(width) + np.uint16(e.x)] += 1
    return -1
