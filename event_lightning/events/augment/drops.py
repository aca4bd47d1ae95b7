"""Random event drops: a fraction of the events, one interval of time, or one box of pixels."""

from __future__ import annotations

import numpy as np

from event_lightning.events.augment.common import Range, _as_events, _draw
from event_lightning.events.core import SensorSize


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
