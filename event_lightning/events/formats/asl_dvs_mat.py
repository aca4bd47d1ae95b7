"""The original ASL-DVS release: one MATLAB ``.mat`` file per recording (DAVIS240c, 240x180).

Each file holds four column vectors ``ts`` (µs), ``x``, ``y``, ``pol`` (0/1), as read with
``scipy.io.loadmat``.  Loaders disagree on the orientation they hand out:

* ``flip="none"``: the coordinates as stored, which is what spikingjelly 0.0.0.0.15 (used by the
  Event2Vec reference to make its ``events_np`` files) wrote;
* ``flip="y"``: ``y -> 179 - y``, what tonic 1.7's ``ASLDVS`` returns;
* ``flip="xy"``: ``x -> 239 - x`` and ``y -> 179 - y``, what spikingjelly 2.0 writes into its npz.

:func:`write_asl_dvs_mat` writes the same layout (for fixtures and the synthetic stand-in); it
applies the inverse of ``flip`` so that reading back with the same ``flip`` returns the input.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.io

from event_lightning.events.core import EVENT_DTYPE, EventFormatError, SensorSize, check_castable, make_events, validate
from event_lightning.events.formats.mat5 import read_mat_variables

__all__ = [
    "ASL_DVS_CLASSES",
    "ASL_DVS_FLIPS",
    "ASL_DVS_MAT_KEYS",
    "ASL_DVS_SENSOR_SIZE",
    "read_asl_dvs_mat",
    "write_asl_dvs_mat",
]

ASL_DVS_SENSOR_SIZE = SensorSize(width=240, height=180, polarities=2)
# 24 static letters: j and z need motion and are not in the dataset.
ASL_DVS_CLASSES = tuple("abcdefghiklmnopqrstuvwxy")
ASL_DVS_MAT_KEYS = ("ts", "x", "y", "pol")
ASL_DVS_FLIPS = ("none", "y", "xy")


def _apply_flip(x: np.ndarray, y: np.ndarray, flip: str, sensor_size: SensorSize) -> tuple[np.ndarray, np.ndarray]:
    if flip not in ASL_DVS_FLIPS:
        raise ValueError(f"flip must be one of {ASL_DVS_FLIPS}, found {flip!r}")
    x = x.astype(np.int64)
    y = y.astype(np.int64)
    if flip in ("y", "xy"):
        y = sensor_size.height - 1 - y
    if flip == "xy":
        x = sensor_size.width - 1 - x
    return x, y


def read_asl_dvs_mat(
    path: str | os.PathLike,
    *,
    flip: str = "none",
    sensor_size: SensorSize | None = ASL_DVS_SENSOR_SIZE,
    allow_empty: bool = False,
) -> np.ndarray:
    """Read one ASL-DVS ``.mat`` recording into an :data:`EVENT_DTYPE` array ``[N]``.

    Args:
        path: the ``.mat`` file with column vectors ``ts`` (µs), ``x``, ``y``, ``pol``.
        flip: ``"none"`` (as stored), ``"y"`` (tonic's orientation) or ``"xy"`` (spikingjelly 2.0).
        sensor_size: the sensor used for flipping and for the range check (``None``: only the
            contract is checked -- x, y >= 0, p in {0, 1}, t >= 0 -- and flips use 240x180).
        allow_empty: return an empty stream for a file without events instead of raising.

    Returns:
        Events sorted by t (stable sort when the file is out of order), p in {0, 1}.

    Raises:
        EventFormatError: an unreadable file, a missing key, vectors of different lengths, an
            empty recording, events outside ``sensor_size``; the message names ``path``.
    """
    if flip not in ASL_DVS_FLIPS:
        raise ValueError(f"flip must be one of {ASL_DVS_FLIPS}, found {flip!r}")
    path = Path(path)
    geometry = sensor_size or ASL_DVS_SENSOR_SIZE
    content = read_mat_variables(path, ASL_DVS_MAT_KEYS)
    missing = [k for k in ASL_DVS_MAT_KEYS if k not in content]
    if missing:
        raise EventFormatError(
            f"{path}: missing key(s) {missing}; an ASL-DVS .mat file holds {list(ASL_DVS_MAT_KEYS)}, "
            f"found {sorted(content)}"
        )
    ts, x, y, pol = (content[k].reshape(-1) for k in ASL_DVS_MAT_KEYS)
    lengths = {"ts": len(ts), "x": len(x), "y": len(y), "pol": len(pol)}
    if len(set(lengths.values())) != 1:
        raise EventFormatError(f"{path}: ts, x, y, pol must have one length; found lengths {lengths}")
    if len(ts) == 0 and not allow_empty:
        raise EventFormatError(f"{path}: the recording holds no events")
    # MATLAB stores µs as doubles: whole values pass, sub-µs fractions are truncated.
    check_castable(ts, "ts", np.int64, path, whole=False)
    for name, values, dtype in (("x", x, np.int16), ("y", y, np.int16), ("pol", pol, np.int8)):
        check_castable(values, name, dtype, path)
    x, y = _apply_flip(x, y, flip, geometry)
    events = make_events(x, y, ts.astype(np.int64), pol)
    if len(events) > 1 and (np.diff(events["t"]) < 0).any():
        events = np.sort(events, order="t", kind="stable")
    # Without a sensor the contract still holds: x, y >= 0, p in {0, 1}, t >= 0 µs.
    return validate(events, sensor_size or SensorSize(2**15, 2**15, 2), origin=path)


def write_asl_dvs_mat(
    path: str | os.PathLike,
    events: np.ndarray,
    *,
    flip: str = "none",
    sensor_size: SensorSize = ASL_DVS_SENSOR_SIZE,
) -> Path:
    """Write :data:`EVENT_DTYPE` events as an ASL-DVS ``.mat`` file (column vectors ts, x, y, pol).

    ``ts`` is stored as double (MATLAB's default number type), ``x``, ``y``, ``pol`` as uint8
    (uint16 for sensors wider or taller than 256 pixels).
    ``flip`` is undone before writing, so ``read_asl_dvs_mat(path, flip=flip)`` returns ``events``.
    Parent folders are created.  Returns the written path.
    """
    if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE:
        found = events.dtype if isinstance(events, np.ndarray) else type(events).__name__
        raise EventFormatError(f"{path}: write_asl_dvs_mat expects EVENT_DTYPE events, found {found}")
    validate(events, sensor_size, origin=path, allow_unsorted=True)
    x, y = _apply_flip(events["x"], events["y"], flip, sensor_size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    coordinate_dtype = np.uint8 if max(sensor_size.width, sensor_size.height) <= 256 else np.uint16
    columns = {
        "ts": events["t"].astype(np.float64)[:, None],
        "x": x.astype(coordinate_dtype)[:, None],
        "y": y.astype(coordinate_dtype)[:, None],
        "pol": events["p"].astype(np.uint8)[:, None],
    }
    scipy.io.savemat(path, columns)
    return path
