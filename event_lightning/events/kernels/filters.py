"""Compiled per-pixel filters: tonic's sequential rules run as one pass over the events.

Called by :func:`~event_lightning.events.augment.filters.denoise` and
:func:`~event_lightning.events.augment.filters.refractory_period`: :func:`check_and_box` checks the
input and finds the bounding box (tonic's pixel tables span it), a filter pass marks the events
kept and counts them, and :func:`copy_kept` copies their records into an array of that length
(``np.compress`` is a little faster but first builds an int64 index of the kept events: 8 more
bytes per event at the peak). The caller allocates every array, so the memory a filter uses is
visible to numpy's allocation tracing.
"""

from __future__ import annotations

import numpy as np
from numba import types

from event_lightning.events.kernels.compiler import EVENTS, EVENTS_OUT, jit

_KEEP = types.Array(types.boolean, 1, "C")
_TABLE = types.Array(types.float64, 1, "C")
_NEVER = np.iinfo(np.int64).min  # a pixel without a kept event (a compile-time constant)


@jit(types.UniTuple(types.int64, 3)(EVENTS))
def check_and_box(events):  # pragma: no cover - compiled
    """``(first bad index or -1, max x, max y)``: the filters' input rule (``x, y >= 0``, times
    non-decreasing), checked in stream order, and the bounding box of the events checked."""
    max_x, max_y = 0, 0
    for i in range(len(events)):
        e = events[i]
        if e.x < 0 or e.y < 0 or (i and e.t < events[i - 1].t):
            return i, max_x, max_y
        max_x = max(max_x, e.x)
        max_y = max(max_y, e.y)
    return -1, max_x, max_y


@jit(types.int64(EVENTS, _TABLE, types.int64, types.float64, types.boolean, _KEEP))
def denoise_keep(events, memory, stride, filter_time, diagonals, keep):  # pragma: no cover - compiled
    """tonic's ``Denoise``: keep an event when a 4-neighbour (8 with ``diagonals``) holds a memory
    ``> float(t)``; each event sets its own pixel's memory to ``float(t) + filter_time``.

    ``memory`` is the bounding box with a one-pixel border, rows of ``stride = width + 2``: box
    pixels start at ``filter_time`` (tonic's start value), the border at −inf (never recent), so
    edge pixels need no bounds tests. Marks ``keep [N]``; returns the number kept.
    """
    kept = 0
    for i in range(len(events)):
        e = events[i]
        t = float(e.t)
        cell = (e.y + 1) * stride + e.x + 1
        # the latest neighbour memory, compared once: branches on random neighbours mispredict
        latest = max(max(memory[cell - 1], memory[cell + 1]), max(memory[cell - stride], memory[cell + stride]))
        if diagonals:
            latest = max(
                latest,
                max(
                    max(memory[cell - stride - 1], memory[cell - stride + 1]),
                    max(memory[cell + stride - 1], memory[cell + stride + 1]),
                ),
            )
        memory[cell] = t + filter_time
        keep[i] = latest > t
        kept += keep[i]
    return kept


@jit(types.int64(EVENTS, _TABLE, types.int64, types.float64, _KEEP))
def refractory_keep(events, last, width, delta, keep):  # pragma: no cover - compiled
    """tonic's ``RefractoryPeriod``: keep an event when ``float(t) − last[pixel] > delta``, then
    ``last[pixel] = float(t)``, kept or not. ``last`` spans the bounding box (rows of ``width``),
    every pixel starting at ``−delta``. Marks ``keep [N]``; returns the number kept."""
    kept = 0
    for i in range(len(events)):
        e = events[i]
        cell = e.y * width + e.x
        t = float(e.t)
        keep[i] = t - last[cell] > delta
        last[cell] = t
        kept += keep[i]
    return kept


@jit(types.int64(EVENTS, types.Array(types.int64, 1, "C"), types.int64, types.float64, _KEEP))
def dead_time_keep(events, last_kept, width, delta, keep):  # pragma: no cover - compiled
    """A true dead time: keep an event when its pixel has no kept event yet (``last_kept`` holds
    ``_NEVER`` there) or ``t − last_kept[pixel] > delta``; a kept event sets
    ``last_kept[pixel] = t``. Marks ``keep [N]``; returns the number kept."""
    kept = 0
    for i in range(len(events)):
        e = events[i]
        cell = e.y * width + e.x
        survives = last_kept[cell] == _NEVER or float(e.t - last_kept[cell]) > delta
        if survives:
            last_kept[cell] = e.t
        keep[i] = survives
        kept += survives
    return kept


@jit(types.void(EVENTS, _KEEP, EVENTS_OUT))
def copy_kept(events, keep, out):  # pragma: no cover - compiled
    """Copy the records with ``keep[i]`` into ``out`` (as long as the number kept), in order."""
    j = 0
    for i in range(len(events)):
        if keep[i]:
            out[j] = events[i]
            j += 1
