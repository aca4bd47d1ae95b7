"""tonic's DVSGesture on-disk layout: one ``.npy`` per gesture, grouped by user and lighting.

tonic 1.7 (``tonic.datasets.DVSGesture``) extracts its archives to::

    <save_to>/DVSGesture/ibmGestureTrain/user01_fluorescent/0.npy ... 10.npy
    <save_to>/DVSGesture/ibmGestureTest/user24_led/...

Folder ``user<NN>_<lighting>`` (lighting may itself hold an underscore: ``fluorescent_led``), file
``<label>.npy`` with label 0..10 (10 = "Other gestures"). Each file holds a 2-D array ``[N, 4]``
whose columns are ``x, y, p, t`` with ``t`` in **milliseconds** (tonic multiplies column 3 by
1000 on load, then casts to ``x:int16, y:int16, p:bool, t:int64``). The sensor is 128x128x2.
tonic's own fixtures save ``structured_to_unstructured`` of that dtype, i.e. int64 columns;
:func:`write_dvsgesture_npy` writes the same, so ``tonic.datasets.DVSGesture`` reads our files.
:func:`read_dvsgesture_npy` also accepts float columns holding whole milliseconds.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from event_lightning.events.core import EventFormatError, SensorSize, make_events, validate
from event_lightning.events.formats.npy import read_npy

__all__ = [
    "DVSGESTURE_CLASSES",
    "DVSGESTURE_COLUMNS",
    "DVSGESTURE_OTHER_LABEL",
    "DVSGESTURE_SENSOR_SIZE",
    "DVSGestureRecord",
    "dvsgesture_split_dir",
    "list_dvsgesture_split",
    "read_dvsgesture_npy",
    "write_dvsgesture_npy",
]

DVSGESTURE_SENSOR_SIZE = SensorSize(width=128, height=128, polarities=2)
DVSGESTURE_COLUMNS = ("x", "y", "p", "t")
DVSGESTURE_OTHER_LABEL = 10
DVSGESTURE_CLASSES = (
    "hand clapping",
    "right hand wave",
    "left hand wave",
    "right arm clockwise",
    "right arm counter-clockwise",
    "left arm clockwise",
    "left arm counter-clockwise",
    "arm roll",
    "air drums",
    "air guitar",
    "other gestures",
)
_SPLIT_FOLDERS = {True: "ibmGestureTrain", False: "ibmGestureTest"}
_USER_FOLDER = re.compile(r"^user(\d+)_(.+)$")
_MS_TO_US = 1000


@dataclass(frozen=True)
class DVSGestureRecord:
    """One gesture file: its path, label (0..10), user number and lighting token (folder suffix)."""

    path: Path
    label: int
    user: int
    lighting: str


def dvsgesture_split_dir(root: str | os.PathLike, train: bool) -> Path:
    """``<root>/DVSGesture/ibmGestureTrain`` (or ``ibmGestureTest``): where tonic extracts a split."""
    return Path(root) / "DVSGesture" / _SPLIT_FOLDERS[bool(train)]


def list_dvsgesture_split(root: str | os.PathLike, train: bool) -> list[DVSGestureRecord]:
    """Every ``user*/<label>.npy`` of a split, sorted by (user, lighting, label).

    Raises:
        FileNotFoundError: the split folder is missing (with what to download and where).
        EventFormatError: a folder or file name that does not follow the layout.
    """
    split_dir = dvsgesture_split_dir(root, train)
    if not split_dir.is_dir():
        raise FileNotFoundError(
            f"DVSGesture: no folder {split_dir}. Let tonic download it (tonic.datasets.DVSGesture(save_to="
            f"{str(root)!r}, train={bool(train)})) or extract {_SPLIT_FOLDERS[bool(train)]}.tar.gz from tonic's "
            "figshare mirror into that folder"
        )
    records = []
    for folder in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        match = _USER_FOLDER.match(folder.name)
        if match is None:
            raise EventFormatError(f"{folder}: expected a folder named user<NN>_<lighting>, found {folder.name!r}")
        user, lighting = int(match.group(1)), match.group(2)
        for file in sorted(folder.glob("*.npy")):
            if not file.stem.isdigit():
                raise EventFormatError(f"{file}: expected a file named <label>.npy with label 0..10")
            label = int(file.stem)
            if not 0 <= label <= DVSGESTURE_OTHER_LABEL:
                raise EventFormatError(f"{file}: label {label} outside 0..{DVSGESTURE_OTHER_LABEL}")
            records.append(DVSGestureRecord(file, label, user, lighting))
    records.sort(key=lambda r: (r.user, r.lighting, r.label))
    return records


def read_dvsgesture_npy(path: str | os.PathLike, *, allow_empty: bool = False) -> np.ndarray:
    """Read one tonic DVSGesture ``.npy`` (columns ``x, y, p, t[ms]``) into :data:`EVENT_DTYPE` (t in µs).

    Raises:
        EventFormatError: unreadable/truncated file, wrong shape or dtype, fractional milliseconds,
            coordinates outside 128x128, unsorted time, or an empty recording (unless
            ``allow_empty``); the message names ``path``.
    """
    path = Path(path)
    array = read_npy(path)
    if array.ndim != 2 or array.shape[1] != 4:
        raise EventFormatError(
            f"{path}: expected a 2-D array [N, 4] with columns {DVSGESTURE_COLUMNS} (t in ms); found shape "
            f"{array.shape}"
        )
    if array.dtype.kind not in "iuf":
        raise EventFormatError(f"{path}: expected integer or float columns, found dtype {array.dtype}")
    if array.shape[0] == 0 and not allow_empty:
        raise EventFormatError(f"{path}: the recording holds no events; pass allow_empty=True to read it")
    x, y, p, t_ms = (array[:, i] for i in range(4))
    if array.dtype.kind == "f":
        # x, y and whole milliseconds only: a cast would turn x=3.7 into 3 and 2.5 ms into 2 ms.
        fractional = ~np.isfinite(array) | (array != np.trunc(array))
        if fractional.any():
            row, column = (int(i[0]) for i in np.nonzero(fractional))
            raise EventFormatError(
                f"{path}: column {column} ({DVSGESTURE_COLUMNS[column]}) must hold finite whole numbers "
                f"(t in whole ms); found {array[row, column]} at row {row}"
            )
    if ((p != 0) & (p != 1)).any():
        i = int(np.flatnonzero((p != 0) & (p != 1))[0])
        raise EventFormatError(f"{path}: polarity column (2) must be 0 or 1; found {p[i]} at row {i}")
    int16 = np.iinfo(np.int16)
    beyond = (x < int16.min) | (x > int16.max) | (y < int16.min) | (y > int16.max)
    if beyond.any():
        # Checked before the int16 cast, which would wrap x=65536 onto pixel 0; validate() reports the rest.
        i = int(np.flatnonzero(beyond)[0])
        raise EventFormatError(
            f"{path}: x, y must lie on the {DVSGESTURE_SENSOR_SIZE} sensor; found x={x[i]}, y={y[i]} at row {i}"
        )
    too_late = t_ms > np.iinfo(np.int64).max // _MS_TO_US
    if too_late.any():
        # ms -> µs would overflow int64 and wrap to a plausible-looking timestamp.
        i = int(np.flatnonzero(too_late)[0])
        raise EventFormatError(f"{path}: timestamp column (3) holds {t_ms[i]} ms at row {i}, beyond the int64 µs range")
    events = make_events(x, y, t_ms.astype(np.int64) * _MS_TO_US, p.astype(np.int8))
    return validate(events, DVSGESTURE_SENSOR_SIZE, origin=path)


def write_dvsgesture_npy(path: str | os.PathLike, events: np.ndarray) -> None:
    """Write :data:`EVENT_DTYPE` events as tonic's DVSGesture ``.npy``: int64 ``[N, 4]``, ``x, y, p, t[ms]``.

    Timestamps are floored to whole milliseconds (the layout's precision). The file is written
    to a temporary name and renamed into place, so a crash never leaves a truncated file.
    """
    path = Path(path)
    validate(events, DVSGESTURE_SENSOR_SIZE, origin=path)
    columns = [events["x"], events["y"], events["p"], events["t"] // _MS_TO_US]
    array = np.stack([c.astype(np.int64) for c in columns], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.npy")
    np.save(tmp, array, allow_pickle=False)
    os.replace(tmp, path)
