"""The augmentations as frozen dataclasses behind one signature, chained with :class:`Compose`.

Each is called as ``transform(events, sensor_size, rng) -> (events, sensor_size)``, so a pipeline
can be listed in a config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from event_lightning.events.augment.common import Range, Transformed, _as_events
from event_lightning.events.augment.drops import drop_by_area, drop_by_time, drop_event
from event_lightning.events.augment.filters import denoise, refractory_period
from event_lightning.events.augment.geometry import (
    center_crop,
    downsample,
    flip_lr,
    flip_polarity,
    flip_ud,
    random_crop,
)
from event_lightning.events.augment.jitter import spatial_jitter, time_jitter
from event_lightning.events.core import SensorSize


class EventTransform(Protocol):
    """``transform(events, sensor_size, rng) -> (events, sensor_size)``."""

    def __call__(
        self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator
    ) -> tuple[np.ndarray, SensorSize]: ...


@dataclass(frozen=True)
class FlipLR:
    """:func:`flip_lr` with probability ``p``."""

    p: float = 0.5

    def __call__(self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator) -> Transformed:
        return flip_lr(events, sensor_size, rng, p=self.p), SensorSize.coerce(sensor_size)


@dataclass(frozen=True)
class FlipUD:
    """:func:`flip_ud` with probability ``p``."""

    p: float = 0.5

    def __call__(self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator) -> Transformed:
        return flip_ud(events, sensor_size, rng, p=self.p), SensorSize.coerce(sensor_size)


@dataclass(frozen=True)
class FlipPolarity:
    """:func:`flip_polarity` with probability ``p``."""

    p: float = 0.5

    def __call__(self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator) -> Transformed:
        return flip_polarity(events, rng, p=self.p), SensorSize.coerce(sensor_size)


@dataclass(frozen=True)
class CenterCrop:
    """:func:`center_crop` to ``size`` (int or ``(width, height)``)."""

    size: int | tuple[int, int]

    def __call__(self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator) -> Transformed:
        return center_crop(events, sensor_size, self.size)


@dataclass(frozen=True)
class RandomCrop:
    """:func:`random_crop` to ``size`` (int or ``(width, height)``)."""

    size: int | tuple[int, int]

    def __call__(self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator) -> Transformed:
        return random_crop(events, sensor_size, self.size, rng)


@dataclass(frozen=True)
class Downsample:
    """:func:`downsample` by ``spatial_factor`` / ``time_factor``, or to ``target_size``."""

    spatial_factor: float | tuple[float, float] = 1
    time_factor: float = 1
    target_size: tuple[int, int] | None = None

    def __call__(self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator) -> Transformed:
        return downsample(
            events,
            sensor_size,
            spatial_factor=self.spatial_factor,
            time_factor=self.time_factor,
            target_size=self.target_size,
        )


@dataclass(frozen=True)
class SpatialJitter:
    """:func:`spatial_jitter` (variances in pixels²)."""

    var_x: float = 1
    var_y: float = 1
    sigma_xy: float = 0
    outliers: Literal["drop", "clamp"] = "drop"

    def __call__(self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator) -> Transformed:
        out = spatial_jitter(
            events,
            sensor_size,
            rng,
            var_x=self.var_x,
            var_y=self.var_y,
            sigma_xy=self.sigma_xy,
            outliers=self.outliers,
        )
        return out, SensorSize.coerce(sensor_size)


@dataclass(frozen=True)
class TimeJitter:
    """:func:`time_jitter` with ``std`` µs."""

    std: float
    negative: Literal["drop", "clamp"] = "drop"

    def __call__(self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator) -> Transformed:
        return time_jitter(events, rng, std=self.std, negative=self.negative), SensorSize.coerce(sensor_size)


@dataclass(frozen=True)
class DropEvent:
    """:func:`drop_event` with ratio ``p`` (or a range)."""

    p: Range = 0.1

    def __call__(self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator) -> Transformed:
        return drop_event(events, rng, p=self.p), SensorSize.coerce(sensor_size)


@dataclass(frozen=True)
class DropByTime:
    """:func:`drop_by_time` with ``duration_ratio`` (or a range)."""

    duration_ratio: Range = 0.2

    def __call__(self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator) -> Transformed:
        return drop_by_time(events, rng, duration_ratio=self.duration_ratio), SensorSize.coerce(sensor_size)


@dataclass(frozen=True)
class DropByArea:
    """:func:`drop_by_area` with ``area_ratio`` (or a range)."""

    area_ratio: Range = 0.2

    def __call__(self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator) -> Transformed:
        out = drop_by_area(events, sensor_size, rng, area_ratio=self.area_ratio)
        return out, SensorSize.coerce(sensor_size)


@dataclass(frozen=True)
class Denoise:
    """:func:`denoise` with ``filter_time`` µs."""

    filter_time: float
    connectivity: Literal[4, 8] = 4

    def __call__(self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator) -> Transformed:
        out = denoise(events, self.filter_time, connectivity=self.connectivity)
        return out, SensorSize.coerce(sensor_size)


@dataclass(frozen=True)
class RefractoryPeriod:
    """:func:`refractory_period` with ``delta`` µs (or a range)."""

    delta: Range
    reference: Literal["event", "kept"] = "event"

    def __call__(self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator) -> Transformed:
        out = refractory_period(events, self.delta, rng=rng, reference=self.reference)
        return out, SensorSize.coerce(sensor_size)


@dataclass(frozen=True)
class Compose:
    """Apply ``transforms`` in order, threading the sensor size through (crops change it)."""

    transforms: tuple[EventTransform, ...]

    def __call__(
        self, events: np.ndarray, sensor_size: SensorSize | tuple, rng: np.random.Generator
    ) -> tuple[np.ndarray, SensorSize]:
        sensor = SensorSize.coerce(sensor_size)
        events = _as_events(events)
        for transform in self.transforms:
            events, sensor = transform(events, sensor, rng)
        return events, sensor
