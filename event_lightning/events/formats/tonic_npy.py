"""tonic-style per-sample ``.npy`` recordings (POKER-DVS): a 2-D integer array, one row per event.

tonic's ``POKERDVS`` keeps each pip recording as an unstructured integer array of shape ``[N, 4]``
whose columns are ``(t, x, y, p)`` (t in µs) and turns it into a structured array with int fields
``t, x, y, p`` on access; its sensor is 35x35x2.  :func:`read_tonic_npy` reads such a file into
:data:`EVENT_DTYPE` (columns taken by their position in ``columns``, polarity ``-1/+1`` mapped to
``0/1``), and :func:`write_tonic_npy` writes the same layout (int64) for fixtures and stand-ins.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from event_lightning.events.core import EVENT_FIELDS, EventFormatError, SensorSize, make_events, validate
from event_lightning.events.formats.npy import read_npy

__all__ = ["POKERDVS_COLUMNS", "POKERDVS_SENSOR_SIZE", "read_tonic_npy", "write_tonic_npy"]

POKERDVS_COLUMNS = ("t", "x", "y", "p")
POKERDVS_SENSOR_SIZE = SensorSize(width=35, height=35, polarities=2)

_INT16 = np.iinfo(np.int16)


def _check_columns(columns: tuple[str, ...]) -> tuple[str, ...]:
    columns = tuple(columns)
    if sorted(columns) != sorted(EVENT_FIELDS):
        raise ValueError(f"columns must name each of {EVENT_FIELDS} once; found {columns}")
    return columns


def read_tonic_npy(
    path: str | os.PathLike,
    *,
    columns: tuple[str, ...] = POKERDVS_COLUMNS,
    sensor_size: SensorSize | None = POKERDVS_SENSOR_SIZE,
    allow_empty: bool = False,
) -> np.ndarray:
    """Read one tonic-style ``.npy`` recording into an :data:`EVENT_DTYPE` array.

    Args:
        path: the ``.npy`` file, holding an integer array ``[N, 4]``.
        columns: the meaning of the 4 columns, in order (POKER-DVS: ``t, x, y, p``).
        sensor_size: events outside it raise :class:`EventFormatError`; ``None`` checks only the
            contract (x, y >= 0, p in {0, 1}, t >= 0).
        allow_empty: return an empty stream for a ``[0, 4]`` array instead of raising.

    Returns:
        Events ``[N]`` (t in µs, p in {0, 1}) sorted by t; a stable sort is applied when the
        rows are out of time order.

    Raises:
        EventFormatError: unreadable / truncated file, wrong shape or dtype, an empty
            recording, coordinates outside ``sensor_size``; the message names ``path``.
    """
    path = Path(path)
    columns = _check_columns(columns)
    array = read_npy(path)
    if array.ndim != 2 or array.shape[1] != len(columns):
        raise EventFormatError(
            f"{path}: expected a 2-D array [N, {len(columns)}] with columns {columns}; found shape {array.shape}"
        )
    if array.dtype.kind not in "iu":
        raise EventFormatError(
            f"{path}: expected an integer array (columns {columns}, t in µs); found dtype {array.dtype}"
        )
    if array.shape[0] == 0:
        if allow_empty:
            return make_events(*(np.zeros(0, dtype=np.int64) for _ in range(4)))
        raise EventFormatError(
            f"{path}: the recording holds no events (shape {array.shape}); pass allow_empty=True to "
            "read it as an empty stream"
        )
    by_name = {name: array[:, i] for i, name in enumerate(columns)}
    for name in ("x", "y"):
        values = by_name[name]
        bad = (values < _INT16.min) | (values > _INT16.max)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise EventFormatError(
                f"{path}: column {name!r} must hold pixel coordinates (int16 range); "
                f"found {name}={int(values[i])} at row {i}"
            )
    events = make_events(by_name["x"], by_name["y"], by_name["t"], by_name["p"])
    if len(events) > 1 and (np.diff(events["t"]) < 0).any():
        events = events[np.argsort(events["t"], kind="stable")]
    # Without a sensor the contract still holds: x, y >= 0, p in {0, 1}, t >= 0 µs.
    return validate(events, sensor_size or SensorSize(int(_INT16.max) + 1, int(_INT16.max) + 1, 2), origin=path)


def write_tonic_npy(
    path: str | os.PathLike,
    events: np.ndarray,
    *,
    columns: tuple[str, ...] = POKERDVS_COLUMNS,
    sensor_size: SensorSize | None = POKERDVS_SENSOR_SIZE,
) -> None:
    """Write ``events`` (:data:`EVENT_DTYPE`) as an int64 ``[N, 4]`` ``.npy`` in ``columns`` order.

    The events are validated first (against ``sensor_size`` unless ``None``); parent folders are
    created, and the file is renamed into place so no truncated file is left under ``path``.
    """
    path = Path(path)
    columns = _check_columns(columns)
    if sensor_size is not None:
        validate(events, sensor_size, origin=path)
    else:
        validate(events, SensorSize(int(_INT16.max) + 1, int(_INT16.max) + 1, 2), origin=path)
    array = np.stack([events[name].astype(np.int64) for name in columns], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.npy")
    np.save(tmp, array, allow_pickle=False)
    os.replace(tmp, path)
