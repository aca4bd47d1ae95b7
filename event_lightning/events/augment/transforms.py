"""The augmentations as frozen dataclasses, callable this package's way and tonic's, chained with :class:`Compose`.

Two call styles give the same events for the same generator:

* ``transform(events, sensor_size, rng) -> (events, sensor_size)``: the sensor threads through
  a pipeline (crops change it), randomness comes from ``rng``;
* tonic's ``transform(events) -> events``: the sensor is the transform's own ``sensor_size``
  field (as tonic's dataclasses hold theirs; transforms that never read it need none), the
  events come back in the caller's dtype, and the generator is ``rng=`` or, without it, one drawn
  from numpy's global state (:func:`~event_lightning.events.augment.tonic_boundary.generator_from_global`).
  So they run inside ``tonic.transforms.Compose``.

:class:`Compose` chains these and any callable on events (tonic's transforms included).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol

import numpy as np

from event_lightning.events.augment.common import Range, Transformed
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
from event_lightning.events.augment.tonic_boundary import (
    events_in,
    events_like,
    generator_from_global,
    global_numpy_seeded,
)
from event_lightning.events.core import SensorSize

SensorSpec = SensorSize | tuple[int, int, int] | None
"""A transform's own sensor for the tonic-style call: a :class:`SensorSize` or tonic's ``(W, H, P)``."""


class EventTransform(Protocol):
    """``transform(events, sensor_size, rng) -> (events, sensor_size)``."""

    def __call__(
        self, events: np.ndarray, sensor_size: SensorSize, rng: np.random.Generator
    ) -> tuple[np.ndarray, SensorSize]: ...


class SensorTransform(ABC):
    """Both call styles of the augmentation dataclasses (see the module docstring).

    Subclasses implement :meth:`apply` and declare whether they draw from the generator
    (``random``) and read the sensor (``needs_sensor``); each has a ``sensor_size`` field.
    """

    random: ClassVar[bool] = True
    needs_sensor: ClassVar[bool] = True
    sensor_size: SensorSpec

    @abstractmethod
    def apply(self, events: np.ndarray, sensor: SensorSize | None, rng: np.random.Generator | None) -> Transformed:
        """The transform on EVENT_DTYPE ``events`` with ``sensor`` (None only when not ``needs_sensor``)."""

    def __call__(
        self,
        events: np.ndarray,
        sensor_size: SensorSize | tuple | None = None,
        rng: np.random.Generator | None = None,
    ) -> Transformed | np.ndarray:
        """``(events, sensor_size, rng) -> (events, sensor_size)``, or tonic's ``(events) -> events``."""
        name = type(self).__name__
        if sensor_size is None:
            return self._tonic_call(events, rng)
        if rng is None and self.random:
            raise ValueError(f"{name}: called with a sensor size, it needs an rng (numpy Generator) too")
        return self.apply(events_in(events, name), SensorSize.coerce(sensor_size), rng)

    def _tonic_call(self, events: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        name = type(self).__name__
        if self.sensor_size is None and self.needs_sensor:
            raise ValueError(
                f"{name}: called the tonic way, t(events), it needs its own sensor: "
                f"{name}(..., sensor_size=(W, H, P))"
            )
        sensor = None if self.sensor_size is None else SensorSize.coerce(self.sensor_size)
        if rng is None and self.random:
            rng = generator_from_global()
        out, _ = self.apply(events_in(events, name), sensor, rng)
        return events_like(out, events.dtype)


@dataclass(frozen=True)
class FlipLR(SensorTransform):
    """:func:`flip_lr` with probability ``p``."""

    p: float = 0.5
    sensor_size: SensorSpec = None

    def apply(self, events: np.ndarray, sensor: SensorSize | None, rng: np.random.Generator | None) -> Transformed:
        return flip_lr(events, sensor, rng, p=self.p), sensor


@dataclass(frozen=True)
class FlipUD(SensorTransform):
    """:func:`flip_ud` with probability ``p``."""

    p: float = 0.5
    sensor_size: SensorSpec = None

    def apply(self, events: np.ndarray, sensor: SensorSize | None, rng: np.random.Generator | None) -> Transformed:
        return flip_ud(events, sensor, rng, p=self.p), sensor


@dataclass(frozen=True)
class FlipPolarity(SensorTransform):
    """:func:`flip_polarity` with probability ``p``."""

    needs_sensor: ClassVar[bool] = False
    p: float = 0.5
    sensor_size: SensorSpec = None

    def apply(self, events: np.ndarray, sensor: SensorSize | None, rng: np.random.Generator | None) -> Transformed:
        return flip_polarity(events, rng, p=self.p), sensor


@dataclass(frozen=True)
class CenterCrop(SensorTransform):
    """:func:`center_crop` to ``size`` (int or ``(width, height)``)."""

    random: ClassVar[bool] = False
    size: int | tuple[int, int]
    sensor_size: SensorSpec = None

    def apply(self, events: np.ndarray, sensor: SensorSize | None, rng: np.random.Generator | None) -> Transformed:
        return center_crop(events, sensor, self.size)


@dataclass(frozen=True)
class RandomCrop(SensorTransform):
    """:func:`random_crop` to ``size`` (int or ``(width, height)``)."""

    size: int | tuple[int, int]
    sensor_size: SensorSpec = None

    def apply(self, events: np.ndarray, sensor: SensorSize | None, rng: np.random.Generator | None) -> Transformed:
        return random_crop(events, sensor, self.size, rng)


@dataclass(frozen=True)
class Downsample(SensorTransform):
    """:func:`downsample` by ``spatial_factor`` / ``time_factor``, or to ``target_size``."""

    random: ClassVar[bool] = False
    spatial_factor: float | tuple[float, float] = 1
    time_factor: float = 1
    target_size: tuple[int, int] | None = None
    sensor_size: SensorSpec = None

    def apply(self, events: np.ndarray, sensor: SensorSize | None, rng: np.random.Generator | None) -> Transformed:
        return downsample(
            events,
            sensor,
            spatial_factor=self.spatial_factor,
            time_factor=self.time_factor,
            target_size=self.target_size,
        )


@dataclass(frozen=True)
class SpatialJitter(SensorTransform):
    """:func:`spatial_jitter` (variances in pixels²)."""

    var_x: float = 1
    var_y: float = 1
    sigma_xy: float = 0
    outliers: Literal["drop", "clamp"] = "drop"
    sensor_size: SensorSpec = None

    def apply(self, events: np.ndarray, sensor: SensorSize | None, rng: np.random.Generator | None) -> Transformed:
        out = spatial_jitter(
            events, sensor, rng, var_x=self.var_x, var_y=self.var_y, sigma_xy=self.sigma_xy, outliers=self.outliers
        )
        return out, sensor


@dataclass(frozen=True)
class TimeJitter(SensorTransform):
    """:func:`time_jitter` with ``std`` µs."""

    needs_sensor: ClassVar[bool] = False
    std: float
    negative: Literal["drop", "clamp"] = "drop"
    sensor_size: SensorSpec = None

    def apply(self, events: np.ndarray, sensor: SensorSize | None, rng: np.random.Generator | None) -> Transformed:
        return time_jitter(events, rng, std=self.std, negative=self.negative), sensor


@dataclass(frozen=True)
class DropEvent(SensorTransform):
    """:func:`drop_event` with ratio ``p`` (or a range)."""

    needs_sensor: ClassVar[bool] = False
    p: Range = 0.1
    sensor_size: SensorSpec = None

    def apply(self, events: np.ndarray, sensor: SensorSize | None, rng: np.random.Generator | None) -> Transformed:
        return drop_event(events, rng, p=self.p), sensor


@dataclass(frozen=True)
class DropByTime(SensorTransform):
    """:func:`drop_by_time` with ``duration_ratio`` (or a range)."""

    needs_sensor: ClassVar[bool] = False
    duration_ratio: Range = 0.2
    sensor_size: SensorSpec = None

    def apply(self, events: np.ndarray, sensor: SensorSize | None, rng: np.random.Generator | None) -> Transformed:
        return drop_by_time(events, rng, duration_ratio=self.duration_ratio), sensor


@dataclass(frozen=True)
class DropByArea(SensorTransform):
    """:func:`drop_by_area` with ``area_ratio`` (or a range)."""

    area_ratio: Range = 0.2
    sensor_size: SensorSpec = None

    def apply(self, events: np.ndarray, sensor: SensorSize | None, rng: np.random.Generator | None) -> Transformed:
        return drop_by_area(events, sensor, rng, area_ratio=self.area_ratio), sensor


@dataclass(frozen=True)
class Denoise(SensorTransform):
    """:func:`denoise` with ``filter_time`` µs."""

    random: ClassVar[bool] = False
    needs_sensor: ClassVar[bool] = False
    filter_time: float
    connectivity: Literal[4, 8] = 4
    sensor_size: SensorSpec = None

    def apply(self, events: np.ndarray, sensor: SensorSize | None, rng: np.random.Generator | None) -> Transformed:
        return denoise(events, self.filter_time, connectivity=self.connectivity), sensor


@dataclass(frozen=True)
class RefractoryPeriod(SensorTransform):
    """:func:`refractory_period` with ``delta`` µs (or a range, drawn from the generator)."""

    needs_sensor: ClassVar[bool] = False
    delta: Range
    reference: Literal["event", "kept"] = "event"
    sensor_size: SensorSpec = None

    def apply(self, events: np.ndarray, sensor: SensorSize | None, rng: np.random.Generator | None) -> Transformed:
        return refractory_period(events, self.delta, rng=rng, reference=self.reference), sensor


@dataclass(frozen=True)
class Compose(SensorTransform):
    """Apply ``transforms`` in order, threading the sensor size through (crops change it).

    ``transforms`` may mix this package's transforms with tonic's and any other callable
    ``events -> events`` (a structured array with x, y, t, p). Such a callable gets EVENT_DTYPE
    events, keeps the sensor, and, when the pipeline has a generator, runs with numpy's global
    state seeded from it (restored after), so tonic's random transforms are reproducible too.
    Called the tonic way without a generator, each transform draws from numpy's global state as
    it would inside ``tonic.transforms.Compose``, so both pipelines give the same events.
    """

    random: ClassVar[bool] = False  # without a generator, each member draws its own (tonic's way)
    needs_sensor: ClassVar[bool] = False
    transforms: Sequence[Callable] = ()
    sensor_size: SensorSpec = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "transforms", tuple(self.transforms))  # a YAML list becomes hashable
        for transform in self.transforms:
            if not callable(transform):
                raise TypeError(f"Compose: every transform must be callable on events, found {transform!r}")

    def apply(self, events: np.ndarray, sensor: SensorSize | None, rng: np.random.Generator | None) -> Transformed:
        for transform in self.transforms:
            if isinstance(transform, SensorTransform):
                if sensor is None and transform.needs_sensor:
                    if transform.sensor_size is None:
                        raise ValueError(f"Compose: {transform!r} needs a sensor; give Compose or it a sensor_size")
                    sensor = SensorSize.coerce(transform.sensor_size)
                member_rng = generator_from_global() if rng is None and transform.random else rng
                events, sensor = transform.apply(events, sensor, member_rng)
            elif rng is None:
                events = events_in(transform(events), f"Compose: {transform!r}")
            else:
                with global_numpy_seeded(rng):
                    events = events_in(transform(events), f"Compose: {transform!r}")
        return events, sensor
