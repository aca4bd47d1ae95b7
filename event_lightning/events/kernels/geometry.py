"""Compiled coordinate scaling: tonic's ``Downsample`` as one pass that reads and writes each record once.

Called by :func:`~event_lightning.events.augment.geometry.downsample`.
"""

from __future__ import annotations

import numpy as np
from numba import types

from event_lightning.events.kernels.compiler import EVENTS, EVENTS_OUT, jit


@jit(types.void(EVENTS, types.float64, types.float64, types.float64, types.int64, EVENTS_OUT))
def scale_events(events, fx, fy, time_factor, integer_time_factor, out):  # pragma: no cover - compiled
    """``out[i] = (trunc(x·fx), trunc(y·fy), trunc(t·time_factor), p)``, as numpy's products
    assigned to the int16 / int64 fields: the coordinates in float64 (through int64 into int16,
    the wrap-around numpy's cast gives on x86 out of range), ``t`` in float64, or in int64 when
    ``integer_time_factor`` is not 0 (numpy multiplies an int64 field by an integer in int64,
    exact past 2**53 µs, where the float product would round)."""
    for i in range(len(events)):
        e = events[i]
        o = out[i]
        o.x = np.int16(np.int64(e.x * fx))
        o.y = np.int16(np.int64(e.y * fy))
        o.t = e.t * integer_time_factor if integer_time_factor else np.int64(e.t * time_factor)
        o.p = e.p
