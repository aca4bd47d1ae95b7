"""Compiled bisection of event times: ``np.searchsorted(t, values)`` without copying ``t`` first.

Called by :func:`~event_lightning.events.represent.slicing._searchsorted` for the frame bounds:
numpy's searchsorted copies a strided ``t`` (the field of the packed event records) into a
contiguous array first, an event-sized copy for a handful of values.
"""

from __future__ import annotations

from numba import types

from event_lightning.events.kernels.compiler import jit

# `t` as a field view of the packed records: declared unaligned, so numba loads it accordingly
_TIMES = types.Array(types.int64, 1, "A", readonly=True, aligned=False)


@jit(
    [
        types.void(_TIMES, types.Array(values, 1, "C", readonly=True), types.Array(types.int64, 1, "C"))
        for values in (types.int64, types.float64)
    ]
)
def searchsorted_left(t, values, out):  # pragma: no cover - compiled
    """``out[j]`` = the first ``i`` with ``t[i] >= values[j]`` (``len(t)`` if none) for a sorted
    ``t``: numpy's ``searchsorted(t, values, side="left")``, comparing in float64 when the values
    are floats, as numpy's common-type comparison does."""
    n = len(t)
    for j in range(len(values)):
        value = values[j]
        lo, hi = 0, n
        while lo < hi:
            mid = (lo + hi) // 2
            if t[mid] < value:
                lo = mid + 1
            else:
                hi = mid
        out[j] = lo
