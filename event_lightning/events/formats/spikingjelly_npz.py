"""spikingjelly's per-sample event files: one ``.npz`` holding 1-D arrays under the keys t, x, y, p.

spikingjelly's ``NeuromorphicDatasetFolder`` datasets (``data_type='event'``) convert every raw
recording into ``<root>/events_np/[train|test/]<class>/<name>.npz`` with four equally long arrays
``t`` (µs), ``x``, ``y``, ``p``; by default the archive is zlib-compressed
(``SJ_SAVE_DATASETS_COMPRESSED=1``).  The arrays keep whatever dtype the raw format had (floats
from MATLAB files, unsigned bytes, bools), so :func:`read_spikingjelly_npz` reads them by key and
casts into :data:`EVENT_DTYPE`; :func:`write_spikingjelly_npz` writes the same layout.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from event_lightning.events.core import EVENT_DTYPE, EventFormatError, SensorSize, check_castable, make_events, validate
from event_lightning.events.formats.npy import NpzReader

__all__ = ["SPIKINGJELLY_NPZ_KEYS", "read_spikingjelly_npz", "write_spikingjelly_npz"]

SPIKINGJELLY_NPZ_KEYS = ("t", "x", "y", "p")
_ANY_SENSOR = SensorSize(2**15, 2**15, 2)


def read_spikingjelly_npz(
    path: str | os.PathLike,
    *,
    sensor_size: SensorSize | None = None,
    allow_empty: bool = False,
) -> np.ndarray:
    """Read one spikingjelly event ``.npz`` into an :data:`EVENT_DTYPE` array ``[N]``.

    Args:
        path: the ``.npz`` file with 1-D arrays ``t`` (µs), ``x``, ``y``, ``p``.
        sensor_size: events outside it raise :class:`EventFormatError`; ``None`` checks only the
            contract (x, y >= 0, p in {0, 1}, t >= 0).
        allow_empty: return an empty stream for a file without events instead of raising.

    Returns:
        Events sorted by t (a stable sort is applied when the file is out of order); polarity
        ``-1/+1`` or bool becomes ``0/1``.

    Raises:
        EventFormatError: an unreadable archive, a missing key, arrays of different lengths, an
            empty recording (unless ``allow_empty``), events outside ``sensor_size``.  The
            message names ``path``.
    """
    path = Path(path)
    with NpzReader(path) as archive:
        missing = archive.missing(SPIKINGJELLY_NPZ_KEYS)
        if missing:
            raise EventFormatError(
                f"{path}: missing key(s) {missing}; a spikingjelly event file holds arrays "
                f"{list(SPIKINGJELLY_NPZ_KEYS)}, found keys {archive.keys}"
            )
        columns = {k: archive.read(k).reshape(-1) for k in SPIKINGJELLY_NPZ_KEYS}
    lengths = {k: len(v) for k, v in columns.items()}
    if len(set(lengths.values())) != 1:
        raise EventFormatError(f"{path}: keys t, x, y, p must have one length; found lengths {lengths}")
    if lengths["t"] == 0 and not allow_empty:
        raise EventFormatError(f"{path}: the recording holds no events (all of t, x, y, p are empty)")
    # MATLAB-born files store µs as doubles: whole values pass, sub-µs fractions are truncated.
    check_castable(columns["t"], "t", np.int64, path, whole=False)
    for name, dtype in (("x", np.int16), ("y", np.int16), ("p", np.int8)):
        check_castable(columns[name], name, dtype, path)
    events = make_events(columns["x"], columns["y"], columns["t"].astype(np.int64), columns["p"])
    if len(events) > 1 and (np.diff(events["t"]) < 0).any():
        events = np.sort(events, order="t", kind="stable")
    # Without a sensor the contract still holds: x, y >= 0, p in {0, 1}, t >= 0 µs.
    return validate(events, sensor_size or _ANY_SENSOR, origin=path)


def write_spikingjelly_npz(path: str | os.PathLike, events: np.ndarray, *, compressed: bool = True) -> Path:
    """Write :data:`EVENT_DTYPE` events as a spikingjelly ``.npz`` (keys t, x, y, p).

    ``compressed`` matches spikingjelly's default (``np.savez_compressed``); uncompressed archives
    read several times faster.  Parent folders are created.  Returns the written path.
    """
    if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE:
        found = events.dtype if isinstance(events, np.ndarray) else type(events).__name__
        raise EventFormatError(f"{path}: write_spikingjelly_npz expects EVENT_DTYPE events, found {found}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save = np.savez_compressed if compressed else np.savez
    with open(path, "wb") as file:
        save(file, t=events["t"], x=events["x"], y=events["y"], p=events["p"])
    return path
