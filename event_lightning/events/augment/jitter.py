"""Random shifts of events in space (Gaussian, in pixels) and in time (Gaussian, in µs)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from event_lightning.events.augment.common import _as_events, _with_fields
from event_lightning.events.core import SensorSize


def spatial_jitter(
    events: np.ndarray,
    sensor_size: SensorSize | tuple,
    rng: np.random.Generator,
    *,
    var_x: float = 1,
    var_y: float = 1,
    sigma_xy: float = 0,
    outliers: Literal["drop", "clamp"] = "drop",
) -> np.ndarray:
    """Add Gaussian shifts with covariance ``[[var_x, sigma_xy], [sigma_xy, var_y]]`` (pixels²).

    Shifts are rounded to the nearest pixel (tonic truncates towards zero, which biases
    towards the origin). Events pushed off the sensor are dropped or clamped to its edge.
    """
    sensor = SensorSize.coerce(sensor_size)
    if outliers not in ("drop", "clamp"):
        raise ValueError(f"spatial_jitter: outliers must be 'drop' or 'clamp', found {outliers!r}")
    events = _as_events(events)
    shifts = rng.multivariate_normal([0.0, 0.0], [[var_x, sigma_xy], [sigma_xy, var_y]], size=len(events))
    x = events["x"] + np.rint(shifts[:, 0]).astype(np.int64)
    y = events["y"] + np.rint(shifts[:, 1]).astype(np.int64)
    if outliers == "clamp":
        return _with_fields(
            events, slice(None), x=np.clip(x, 0, sensor.width - 1), y=np.clip(y, 0, sensor.height - 1)
        )
    keep = (x >= 0) & (x < sensor.width) & (y >= 0) & (y < sensor.height)
    return _with_fields(events, keep, x=x[keep], y=y[keep])


def time_jitter(
    events: np.ndarray,
    rng: np.random.Generator,
    *,
    std: float,
    negative: Literal["drop", "clamp"] = "drop",
) -> np.ndarray:
    """Add rounded Gaussian noise of ``std`` µs to every timestamp, then re-sort (stable).

    Timestamps pushed below 0 are dropped (tonic's ``clip_negative``) or clamped to 0.
    """
    if negative not in ("drop", "clamp"):
        raise ValueError(f"time_jitter: negative must be 'drop' or 'clamp', found {negative!r}")
    events = _as_events(events)
    t = events["t"] + np.rint(rng.normal(0.0, std, size=len(events))).astype(np.int64)
    if negative == "clamp":
        out = _with_fields(events, slice(None), t=np.maximum(t, 0))
    else:
        out = _with_fields(events, t >= 0, t=t[t >= 0])
    return out[np.argsort(out["t"], kind="stable")]
