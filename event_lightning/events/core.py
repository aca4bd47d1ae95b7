"""The event contract every reader converts into, and its validation.

An event stream is a numpy structured array of dtype :data:`EVENT_DTYPE`, one record per event:
``x``/``y`` pixel coordinates (int16), ``t`` timestamp in microseconds (int64), ``p`` polarity
(int8, 0 = OFF, 1 = ON), sorted by ``t``.  Readers address source fields *by name* and cast here,
because tonic and spikingjelly datasets disagree on field order and dtypes (bool polarity in
DVSGesture, uint64 time in CIFAR10-DVS, all-int64 in NMNIST).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])
EVENT_FIELDS = ("x", "y", "t", "p")


class EventFormatError(ValueError):
    """Events or an event file that break the event contract; the message names the source."""


@dataclass(frozen=True)
class SensorSize:
    """Sensor geometry, named so that width and height are never confused.

    tonic writes sensor sizes as ``(W, H, P)`` and spikingjelly's ``get_H_W`` as ``(H, W)``;
    both are accepted through :meth:`from_tonic` / explicit keywords, never as a bare tuple.
    """

    width: int
    height: int
    polarities: int = 2

    def __post_init__(self) -> None:
        for name in ("width", "height", "polarities"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"SensorSize.{name} must be a positive integer, found {value!r}")

    @classmethod
    def from_tonic(cls, size: tuple[int, int, int] | list[int]) -> SensorSize:
        """From tonic's ``(W, H, P)`` tuple."""
        if len(size) != 3:
            raise ValueError(f"a tonic sensor size is (W, H, P); found {size!r}")
        return cls(int(size[0]), int(size[1]), int(size[2]))

    @classmethod
    def coerce(cls, value: SensorSize | dict | tuple | list) -> SensorSize:
        """Accept a SensorSize, a ``{width, height, polarities}`` mapping or a tonic ``(W, H, P)``."""
        if isinstance(value, SensorSize):
            return value
        if isinstance(value, dict):
            return cls(**{k: int(v) for k, v in value.items()})
        return cls.from_tonic(value)

    def as_tonic(self) -> tuple[int, int, int]:
        """tonic's ``(W, H, P)`` order."""
        return (self.width, self.height, self.polarities)

    def as_list(self) -> list[int]:
        """``[W, H, P]`` as plain ints: what models store as a hyperparameter."""
        return [self.width, self.height, self.polarities]

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """``(P, H, W)``: the shape of one frame."""
        return (self.polarities, self.height, self.width)

    @property
    def num_features(self) -> int:
        """``P * H * W``: the length of one flattened frame."""
        return self.polarities * self.height * self.width


def make_events(x: Any, y: Any, t: Any, p: Any) -> np.ndarray:
    """Build an :data:`EVENT_DTYPE` array from four equally long 1-D sequences (t in µs).

    Polarity is mapped to {0, 1}: booleans as they are, signed ``-1/+1`` to ``0/1``.
    """
    x, y, t, p = (np.asarray(a) for a in (x, y, t, p))
    lengths = {len(a) for a in (x, y, t, p)}
    if len(lengths) != 1:
        raise EventFormatError(f"x, y, t, p must have one length each; found {[len(a) for a in (x, y, t, p)]}")
    events = np.empty(len(t), dtype=EVENT_DTYPE)
    events["x"] = x
    events["y"] = y
    events["t"] = t
    events["p"] = p > 0 if p.dtype.kind in "ifu" and p.size and p.min() < 0 else p
    return events


def check_castable(values: np.ndarray, name: str, dtype: type, origin: str | Path, *, whole: bool = True) -> None:
    """Refuse values that the cast into ``dtype`` would wrap, invent or round (x=65536 -> 0, NaN ->
    anything, 3.7 -> 3, 2+1j -> 2).

    Raises :class:`EventFormatError` naming ``origin``, the field ``name``, the allowed values and
    the first offending value. Booleans and empty arrays pass. ``whole=False`` lets fractional
    floats through (the cast truncates them: sub-microsecond timestamps).
    """
    if values.dtype.kind == "b" or values.size == 0:
        return
    if values.dtype.kind not in "iuf":
        raise EventFormatError(
            f"{origin}: key {name!r} must hold real numbers, found dtype {values.dtype}"
            + (" (the cast would drop the imaginary part)" if values.dtype.kind == "c" else "")
        )
    info = np.iinfo(dtype)
    bad = (values < info.min) | (values > info.max)
    if values.dtype.kind == "f":
        bad |= ~np.isfinite(values)
        if whole:
            bad |= values != np.trunc(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        kind = "whole numbers" if whole and values.dtype.kind == "f" else "values"
        raise EventFormatError(
            f"{origin}: key {name!r} must hold finite {kind} in the {np.dtype(dtype).name} range "
            f"[{info.min}, {info.max}]; found {values[i]} at index {i}"
        )


def to_event_array(source: np.ndarray | dict, *, origin: str | Path = "events") -> np.ndarray:
    """Convert a structured array or a mapping with fields x, y, t, p into :data:`EVENT_DTYPE`.

    Fields are read by name, whatever their order or dtype in the source. ``origin`` (a file
    name, a dataset name) goes into the error message when a field is missing.
    """
    names = source.dtype.names if isinstance(source, np.ndarray) else tuple(source.keys())
    if names is None:
        raise EventFormatError(
            f"{origin}: expected a structured array with fields {EVENT_FIELDS}, found a plain "
            f"array of shape {source.shape} and dtype {source.dtype}"
        )
    missing = [f for f in EVENT_FIELDS if f not in names]
    if missing:
        raise EventFormatError(f"{origin}: missing event field(s) {missing}; found fields {list(names)}")
    return make_events(*(np.asarray(source[f]).reshape(-1) for f in EVENT_FIELDS))


def validate(
    events: np.ndarray, sensor_size: SensorSize, *, origin: str | Path = "events", allow_unsorted: bool = False
) -> np.ndarray:
    """Check ``events`` against the contract and ``sensor_size``; return them unchanged.

    Raises :class:`EventFormatError` naming ``origin``, the rule broken, what was expected and
    what was found (with the first offending index): wrong dtype, coordinates outside the
    sensor, polarity outside ``[0, P)``, negative or decreasing timestamps.
    """
    if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE:
        found = events.dtype if isinstance(events, np.ndarray) else type(events).__name__
        raise EventFormatError(
            f"{origin}: expected a structured array of dtype {EVENT_DTYPE.descr}, found {found}; "
            "convert with event_lightning.events.to_event_array"
        )
    if events.ndim != 1:
        raise EventFormatError(f"{origin}: expected a 1-D event array, found shape {events.shape}")
    if len(events) == 0:
        return events
    checks = (
        ("x", events["x"], 0, sensor_size.width, "sensor width"),
        ("y", events["y"], 0, sensor_size.height, "sensor height"),
        ("p", events["p"], 0, sensor_size.polarities, "number of polarities"),
    )
    # The masks that locate an offender are only built once something is wrong (validation runs
    # on every sample of every epoch).
    for name, values, low, high, what in checks:
        # One reduction per field: seen as unsigned, a negative value is larger than any bound.
        if values.view(values.dtype.str.replace("i", "u")).max() >= high:
            bad = (values < low) | (values >= high)
            i = int(np.flatnonzero(bad)[0])
            raise EventFormatError(
                f"{origin}: {int(bad.sum())} event(s) with {name} outside [{low}, {high}) ({what} of "
                f"{sensor_size}); first at index {i}: {name}={int(values[i])}"
            )
    t = events["t"]
    if not allow_unsorted and len(t) > 1 and (t[1:] < t[:-1]).any():
        decreasing = np.flatnonzero(t[1:] < t[:-1])
        i = int(decreasing[0])
        raise EventFormatError(
            f"{origin}: timestamps must be sorted ascending; found t={int(t[i])} then t={int(t[i + 1])} "
            f"at index {i + 1} ({decreasing.size} decrease(s)); sort with np.sort(events, order='t')"
        )
    if (t[0] if not allow_unsorted else t.min()) < 0:  # sorted: the first time is the smallest
        i = int(np.flatnonzero(t < 0)[0])
        raise EventFormatError(f"{origin}: timestamps must be >= 0 µs; found t={int(t[i])} at index {i}")
    return events
