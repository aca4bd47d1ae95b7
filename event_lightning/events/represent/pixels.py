"""What every representation reads from a sample: its events as :data:`EVENT_DTYPE`, and their pixels.

:func:`pixel_index` is the flat ``(p, y, x)`` cell of a ``(P, H, W)`` frame, computed after the
events are checked against the sensor (:func:`~event_lightning.events.core.validate`).
"""

from __future__ import annotations

import numpy as np

from event_lightning.events.core import EVENT_DTYPE, SensorSize, to_event_array, validate


def _as_events(events: np.ndarray) -> np.ndarray:
    """EVENT_DTYPE view of ``events`` (no copy when it already is)."""
    if isinstance(events, np.ndarray) and events.dtype == EVENT_DTYPE:
        return events.reshape(-1)
    return to_event_array(events)


def _pixel_index(events: np.ndarray, sensor: SensorSize, origin: str, *, checked: bool = False) -> np.ndarray:
    """Flat ``(p, y, x)`` index per event (int64) after checking the events against the sensor
    (``checked``: the caller already validated them against ``sensor``).

    A single-polarity sensor accepts one polarity value per stream (either) and maps it to
    channel 0, like tonic; mixed polarities raise.
    """
    # int32 halves the memory traffic of this event-sized pass; the frame offsets added later
    # promote to int64 where needed
    polarity = events["p"].astype(np.int32 if sensor.num_features < 2**31 else np.int64)
    if sensor.polarities == 1:
        if len(events) and polarity.min() != polarity.max():
            raise ValueError(
                f"{origin}: single-polarity sensor {sensor}, but the events contain polarities "
                f"{np.unique(polarity).tolist()}; merge polarities first"
            )
        polarity = np.zeros_like(polarity)
        validate(events, SensorSize(sensor.width, sensor.height, 2), origin=origin)
    elif not checked:
        validate(events, sensor, origin=origin)
    # in place: one event-sized allocation (page faults dominate on large streams)
    polarity *= sensor.height
    polarity += events["y"]
    polarity *= sensor.width
    polarity += events["x"]
    return polarity


def pixel_index(
    events: np.ndarray, sensor_size: SensorSize, *, origin: str = "events", checked: bool = False
) -> np.ndarray:
    """Flat ``(p, y, x)`` index ``[N]`` of every event on ``sensor_size`` (the cell it adds to in a
    ``(P, H, W)`` frame); ``checked``: the events were already validated against the sensor."""
    return _pixel_index(_as_events(events), SensorSize.coerce(sensor_size), origin, checked=checked)
