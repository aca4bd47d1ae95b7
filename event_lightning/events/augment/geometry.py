"""Geometric augmentations: flips (left-right, up-down, and of polarity), crops and downsampling.

Crops and downsampling change the sensor, so they return the new :class:`SensorSize` with the
events; :func:`center_crop` and :func:`downsample` equal tonic 1.7's ``CenterCrop`` and
``Downsample``, and the flips equal tonic's at ``p`` = 0 or 1.
"""

from __future__ import annotations

import numpy as np

from event_lightning.events.augment.common import _as_events, _with_fields
from event_lightning.events.core import EVENT_DTYPE, SensorSize
from event_lightning.events.kernels.loading import compiled_kernels


def _mirror(events: np.ndarray, field: str, extent: int, rng: np.random.Generator, p: float) -> np.ndarray:
    """A copy of ``events``, with probability ``p`` mirrored along ``field``: ``v' = extent − 1 − v``."""
    out = _as_events(events).copy()
    if rng.random() < p:
        out[field] = extent - 1 - out[field]
    return out


def flip_lr(
    events: np.ndarray, sensor_size: SensorSize | tuple, rng: np.random.Generator, *, p: float = 0.5
) -> np.ndarray:
    """With probability ``p``, mirror left-right: ``x' = W − 1 − x``."""
    return _mirror(events, "x", SensorSize.coerce(sensor_size).width, rng, p)


def flip_ud(
    events: np.ndarray, sensor_size: SensorSize | tuple, rng: np.random.Generator, *, p: float = 0.5
) -> np.ndarray:
    """With probability ``p``, mirror up-down: ``y' = H − 1 − y``."""
    return _mirror(events, "y", SensorSize.coerce(sensor_size).height, rng, p)


def flip_polarity(events: np.ndarray, rng: np.random.Generator, *, p: float = 0.5) -> np.ndarray:
    """With probability ``p``, swap ON and OFF for the whole sample: ``p' = 1 − p`` (as tonic)."""
    out = _as_events(events).copy()
    if rng.random() < p:
        out["p"] = 1 - out["p"]
    return out


def crop(
    events: np.ndarray, sensor_size: SensorSize | tuple, *, x0: int, y0: int, width: int, height: int
) -> tuple[np.ndarray, SensorSize]:
    """Keep the box ``[x0, x0 + width) × [y0, y0 + height)`` and re-base it to the origin.

    A negative ``x0``/``y0`` (box larger than the sensor) pads: events shift right/down.
    Returns the events and ``SensorSize(width, height, P)``.
    """
    sensor = SensorSize.coerce(sensor_size)
    cropped = SensorSize(width, height, sensor.polarities)
    events = _as_events(events)
    x, y = events["x"].astype(np.int64), events["y"].astype(np.int64)
    keep = (x >= x0) & (x < x0 + width) & (y >= y0) & (y < y0 + height)
    return _with_fields(events, keep, x=x[keep] - x0, y=y[keep] - y0), cropped


def _size_pair(size: int | tuple[int, int], name: str) -> tuple[int, int]:
    """``(width, height)`` from an int (square) or a pair."""
    if isinstance(size, int | np.integer):
        return int(size), int(size)
    if len(size) != 2:
        raise ValueError(f"{name}: size is an int or (width, height), found {size!r}")
    return int(size[0]), int(size[1])


def center_crop(
    events: np.ndarray, sensor_size: SensorSize | tuple, size: int | tuple[int, int]
) -> tuple[np.ndarray, SensorSize]:
    """Centred crop to ``size`` = ``(width, height)`` (or a square int); padding if larger.

    Offsets ``(W − width) // 2`` and ``(H − height) // 2`` like tonic's ``CenterCrop``.
    """
    sensor = SensorSize.coerce(sensor_size)
    width, height = _size_pair(size, "center_crop")
    x0, y0 = (sensor.width - width) // 2, (sensor.height - height) // 2
    return crop(events, sensor, x0=x0, y0=y0, width=width, height=height)


def random_crop(
    events: np.ndarray, sensor_size: SensorSize | tuple, size: int | tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, SensorSize]:
    """Crop a ``(width, height)`` box at a uniformly drawn position inside the sensor.

    Every position is possible (tonic's ``int(rand()·(W − w))`` never picks the last one).
    """
    sensor = SensorSize.coerce(sensor_size)
    width, height = _size_pair(size, "random_crop")
    if width > sensor.width or height > sensor.height:
        raise ValueError(f"random_crop: size {(width, height)} exceeds the sensor {sensor}")
    x0 = int(rng.integers(0, sensor.width - width + 1))
    y0 = int(rng.integers(0, sensor.height - height + 1))
    return crop(events, sensor, x0=x0, y0=y0, width=width, height=height)


def downsample(
    events: np.ndarray,
    sensor_size: SensorSize | tuple,
    *,
    spatial_factor: float | tuple[float, float] = 1,
    time_factor: float = 1,
    target_size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, SensorSize]:
    """Scale coordinates and timestamps, truncating like tonic's ``Downsample`` (no event dropped).

    ``x' = trunc(x·fx)``, ``y' = trunc(y·fy)``, ``t' = trunc(t·time_factor)``; ``target_size``
    ``(W', H')`` sets ``fx = W'/W``, ``fy = H'/H`` and overrides ``spatial_factor``. One compiled
    pass reads and writes each record once
    (:func:`~event_lightning.events.kernels.geometry.scale_events`).

    Returns:
        the events and the new sensor (``target_size``, else ``trunc((W − 1)·fx) + 1`` by
        ``trunc((H − 1)·fy) + 1``: the smallest sensor holding every mapped pixel).
    """
    sensor = SensorSize.coerce(sensor_size)
    if target_size is not None:
        fx, fy = np.asarray(target_size) / np.asarray([sensor.width, sensor.height])
    elif isinstance(spatial_factor, tuple | list):
        fx, fy = spatial_factor
    else:
        fx = fy = spatial_factor
    if fx <= 0 or fy <= 0 or time_factor <= 0:
        raise ValueError(f"downsample: factors must be > 0, found spatial {(fx, fy)}, time {time_factor}")
    events = _as_events(events)
    # every field is written, so no copy of the records first
    out = np.empty(len(events), dtype=EVENT_DTYPE)
    kernels = compiled_kernels("geometry")
    if kernels is not None:
        # numpy multiplies t by an integer in int64 (and the fallback copies t for a factor of 1)
        integral = isinstance(time_factor, int | np.integer) or time_factor == 1
        kernels.scale_events(events, float(fx), float(fy), float(time_factor), int(time_factor) if integral else 0, out)
    else:  # assigning the float products truncates toward zero as tonic's field assignment does
        out["x"] = events["x"] * fx
        out["y"] = events["y"] * fy
        out["t"] = events["t"] * time_factor if time_factor != 1 else events["t"]
        out["p"] = events["p"]
    if target_size is not None:
        new_sensor = SensorSize(int(target_size[0]), int(target_size[1]), sensor.polarities)
    else:
        new_sensor = SensorSize(
            int((sensor.width - 1) * fx) + 1, int((sensor.height - 1) * fy) + 1, sensor.polarities
        )
    return out, new_sensor
