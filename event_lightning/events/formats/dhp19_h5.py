"""DHP19 recordings as consumed by the hybrid ANN-SNN pose code: per-recording HDF5 files.

Layout (hybrid_pose spec §6), one recording ``<stem>`` (e.g. ``S1_session1_mov1``)::

    <stem>_events.h5
        cam{c}_events/x, y     1-based pixel coordinates (DAVIS346: x in 1..346, y in 1..260)
        cam{c}_events/p        polarity, 0 or 1
        cam{c}_events/t        timestamp, µs, non-decreasing
        cam{c}_ms_to_idx       [M] index of the first event with t >= m ms, for m = 0..M-1
    <stem>_label.h5
        XYZ/3d_poses           [N, 3, 13] Vicon joints in mm (NaN where missing)
        XYZ/timestamps         [N] µs; label k is at (k + 1) * 10 ms
    P1.npy .. P4.npy           3x4 projection matrices, camera_positions.npy [4, 3] mm

The reader converts to the event contract (0-based x/y) at the boundary and reads windows lazily
(``events(cam, start, stop)``), so a training sample touches only its own slice of the file.
Every problem -- a file h5py cannot open (truncated, not HDF5), a missing dataset, arrays of
different lengths, timestamps going backwards, an index past the end -- raises
:class:`EventFormatError` naming the file and the dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from event_lightning.events.core import EVENT_DTYPE, EventFormatError, SensorSize, check_castable, validate
from event_lightning.events.formats.limits import check_declared_bytes, expansion_budget
from event_lightning.events.formats.npy import read_npy

__all__ = [
    "DHP19_JOINTS",
    "DHP19_LABEL_PERIOD_US",
    "DHP19_SENSOR_SIZE",
    "DHP19EventFile",
    "ms_to_idx_table",
    "read_dhp19_events",
    "read_dhp19_labels",
    "read_projection_matrices",
    "write_dhp19_events",
    "write_dhp19_labels",
    "write_projection_matrices",
]

DHP19_SENSOR_SIZE = SensorSize(width=346, height=260, polarities=2)
DHP19_JOINTS = (
    "head",
    "shoulderR",
    "shoulderL",
    "elbowR",
    "elbowL",
    "hipR",
    "hipL",
    "handR",
    "handL",
    "kneeR",
    "kneeL",
    "footR",
    "footL",
)
DHP19_LABEL_PERIOD_US = 10_000
_FIELDS = ("x", "y", "p", "t")
# Timestamps are checked this many at a time so that a long recording never sits in memory twice.
_CHECK_CHUNK = 1 << 22
_PLAIN_LAYOUTS = (h5py.h5d.COMPACT, h5py.h5d.CONTIGUOUS, h5py.h5d.CHUNKED)
_KIND_NAMES = {"iu": "integers", "iub": "integers or booleans", "iuf": "numbers"}


def ms_to_idx_table(t_us: np.ndarray, n_ms: int | None = None) -> np.ndarray:
    """``[M]`` index of the first event with ``t >= m`` ms.

    ``M`` is ``n_ms``, or by default ``ceil(t_last / 1 ms) + 1``.
    """
    if n_ms is None:
        n_ms = int(-(-int(t_us[-1]) // 1000)) + 1 if len(t_us) else 1
    return np.searchsorted(t_us, np.arange(n_ms, dtype=np.int64) * 1000, side="left").astype(np.int64)


def write_dhp19_events(path: str | Path, cameras: Mapping[int, np.ndarray], n_ms: int | None = None) -> Path:
    """Write one recording's ``<stem>_events.h5`` (x/y stored 1-based, with ``cam{c}_ms_to_idx``).

    Args:
        path: the ``.h5`` file to create.
        cameras: camera id -> :data:`EVENT_DTYPE` events sorted by t (0-based pixels).
        n_ms: length of every ``ms_to_idx`` table (default: up to each camera's last event).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for cam, events in cameras.items():
            events = validate(events, DHP19_SENSOR_SIZE, origin=f"{path} camera {cam}")
            group = f.create_group(f"cam{cam}_events")
            group.create_dataset("x", data=events["x"].astype(np.int16) + 1)
            group.create_dataset("y", data=events["y"].astype(np.int16) + 1)
            group.create_dataset("p", data=events["p"].astype(np.int8))
            group.create_dataset("t", data=events["t"].astype(np.int64))
            f.create_dataset(f"cam{cam}_ms_to_idx", data=ms_to_idx_table(events["t"], n_ms))
    return path


def write_dhp19_labels(path: str | Path, poses_mm: np.ndarray, timestamps_us: np.ndarray) -> Path:
    """Write ``<stem>_label.h5`` with ``XYZ/3d_poses [N, 3, 13]`` (mm) and ``XYZ/timestamps [N]`` (µs)."""
    path = Path(path)
    poses_mm = np.asarray(poses_mm, dtype=np.float64)
    if poses_mm.ndim != 3 or poses_mm.shape[1:] != (3, len(DHP19_JOINTS)):
        raise ValueError(f"{path}: poses must have shape [N, 3, 13]; found {poses_mm.shape}")
    if np.shape(timestamps_us) != poses_mm.shape[:1]:
        raise ValueError(f"{path}: timestamps must have shape [{len(poses_mm)}]; found {np.shape(timestamps_us)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("XYZ/3d_poses", data=poses_mm)
        f.create_dataset("XYZ/timestamps", data=np.asarray(timestamps_us, dtype=np.int64))
    return path


def write_projection_matrices(folder: str | Path, projections: Mapping[int, np.ndarray], positions: np.ndarray) -> Path:
    """Write ``P{k}.npy`` (k = 1..4, 3x4) and ``camera_positions.npy`` ([4, 3] mm, row k-1 = P{k})."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for k, matrix in projections.items():
        np.save(folder / f"P{k}.npy", np.asarray(matrix, dtype=np.float64).reshape(3, 4))
    np.save(folder / "camera_positions.npy", np.asarray(positions, dtype=np.float64))
    return folder


def _finite_matrix(file: Path, shape_ok: Callable[[tuple[int, ...]], bool], expected: str) -> np.ndarray:
    """A ``.npy`` of finite numbers whose shape passes ``shape_ok``, as float64 (``expected`` names it)."""
    matrix = read_npy(file)
    if matrix.dtype.kind not in "iuf" or not shape_ok(matrix.shape):
        raise EventFormatError(
            f"{file}: expected {expected} of numbers, found shape {matrix.shape}, dtype {matrix.dtype}"
        )
    matrix = matrix.astype(np.float64)
    if not np.isfinite(matrix).all():
        raise EventFormatError(f"{file}: expected {expected} of finite numbers, found NaN or infinite entries")
    return matrix


def read_projection_matrices(folder: str | Path, p_indices: list[int]) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Read ``P{k}.npy`` for every k in ``p_indices`` and ``camera_positions.npy``.

    Returns:
        ``({k: P [3, 4]}, positions [n, 3])`` (row ``k - 1`` is the centre of P file k).

    Raises:
        FileNotFoundError: a file is missing (naming it and the folder).
        EventFormatError: a file that is not a finite numeric ``.npy`` of the expected shape.
    """
    folder = Path(folder)
    out = {}
    for k in p_indices:
        file = folder / f"P{k}.npy"
        if not file.is_file():
            raise FileNotFoundError(f"DHP19: projection matrix {file} is missing; put P1..P4.npy in {folder}")
        out[k] = _finite_matrix(file, lambda shape: shape == (3, 4), "a 3x4 projection matrix")
    positions_file = folder / "camera_positions.npy"
    if not positions_file.is_file():
        raise FileNotFoundError(f"DHP19: {positions_file} is missing; put camera_positions.npy in {folder}")
    rows = max(p_indices, default=0)
    positions = _finite_matrix(
        positions_file,
        lambda shape: len(shape) == 2 and shape[1] == 3 and shape[0] >= rows,
        "[4, 3] camera centres (row k-1 for P{k})",
    )
    return out, positions


def _open(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except (OSError, ValueError, RuntimeError) as error:
        raise EventFormatError(
            f"{path}: cannot open as HDF5 ({error}); the file is truncated or not an HDF5 file - "
            "re-copy or regenerate it"
        ) from error


@contextmanager
def _reading(path: Path, what: str) -> Iterator[None]:
    """Turn h5py's errors while reading ``what`` into an :class:`EventFormatError` naming ``path``."""
    try:
        yield
    except EventFormatError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as error:
        raise EventFormatError(f"{path}: cannot read {what} ({error}); the file is truncated or corrupt") from error


def _dataset(f: h5py.File, key: str, path: Path, ndim: int = 1, kinds: str = "iu") -> h5py.Dataset:
    """``f[key]``, checked before anything is read: a plain dataset of ``ndim`` dimensions and a
    numeric kind in ``kinds``, whose declared size the file can hold (a 3e9-element dataset
    that was never written is refused here, not allocated)."""
    with _reading(path, f"dataset '{key}'"):
        dataset = f.get(key)
        if not isinstance(dataset, h5py.Dataset):
            found = sorted(f.keys())
            raise EventFormatError(f"{path}: dataset '{key}' is missing; found top-level keys {found}")
        plist = dataset.id.get_create_plist()
        stored = dataset.id.get_storage_size()
        layout, external = plist.get_layout(), plist.get_external_count()
    if dataset.ndim != ndim or dataset.dtype.kind not in kinds:
        raise EventFormatError(
            f"{path}: dataset '{key}' must be a {ndim}-D array of {_KIND_NAMES[kinds]}; found shape {dataset.shape}, "
            f"dtype {dataset.dtype}"
        )
    if layout not in _PLAIN_LAYOUTS or external:
        raise EventFormatError(
            f"{path}: dataset '{key}' must be stored in the file itself (no virtual or external data)"
        )
    check_declared_bytes(dataset.size * dataset.dtype.itemsize, expansion_budget(stored), path, f"dataset '{key}'")
    return dataset


class DHP19EventFile:
    """Lazy reader of one ``<stem>_events.h5``.

    Args:
        path: the events file.
        check: verify every camera when opened (equal field lengths, a valid ``ms_to_idx``,
            non-decreasing timestamps, read in chunks); raises :class:`EventFormatError`.

    The h5py handle is opened on first use in each process (DataLoader workers must not share a
    handle opened before the fork) and closed by :meth:`close`.
    """

    def __init__(self, path: str | Path, check: bool = True) -> None:
        self.path = Path(path)
        self._file: h5py.File | None = None
        self._pid: int | None = None
        self._ms_to_idx: dict[int, np.ndarray] = {}
        self._fields: dict[tuple[int, str], h5py.Dataset] = {}  # checked once per open handle
        if check:
            for cam in self.cameras:
                self.check_camera(cam)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_file"], state["_pid"], state["_fields"] = None, None, {}
        return state

    @property
    def file(self) -> h5py.File:
        import os

        if self._file is None or self._pid != os.getpid():
            self._file, self._pid, self._fields = _open(self.path), os.getpid(), {}
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file, self._fields = None, {}

    def __enter__(self) -> DHP19EventFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def cameras(self) -> list[int]:
        """Camera ids with a ``cam{c}_events`` group."""
        names = [k for k in self.file.keys() if k.startswith("cam") and k.endswith("_events")]
        return sorted(int(k[3:-7]) for k in names if k[3:-7].isdigit())

    def _field(self, cam: int, name: str) -> h5py.Dataset:
        """Checked 1-D dataset ``cam{cam}_events/{name}`` (see :func:`_dataset`), checked once per handle."""
        handle = self.file
        if (cam, name) not in self._fields:
            if not isinstance(handle.get(f"cam{cam}_events"), h5py.Group):
                raise EventFormatError(
                    f"{self.path}: group 'cam{cam}_events' is missing; cameras present: {self.cameras}"
                )
            kinds = "iub" if name == "p" else "iu"
            self._fields[cam, name] = _dataset(handle, f"cam{cam}_events/{name}", self.path, kinds=kinds)
        return self._fields[cam, name]

    def num_events(self, cam: int) -> int:
        return int(self._field(cam, "t").shape[0])

    def ms_to_idx(self, cam: int) -> np.ndarray:
        """``[M]`` int64: index of the first event at or after each millisecond."""
        if cam not in self._ms_to_idx:
            table = _dataset(self.file, f"cam{cam}_ms_to_idx", self.path)
            with _reading(self.path, f"cam{cam}_ms_to_idx"):
                self._ms_to_idx[cam] = np.asarray(table[:], np.int64)
        return self._ms_to_idx[cam]

    def check_camera(self, cam: int) -> None:
        """Raise :class:`EventFormatError` unless camera ``cam`` is internally consistent."""
        lengths = {name: self._field(cam, name).shape[0] for name in _FIELDS}
        if len(set(lengths.values())) != 1:
            raise EventFormatError(
                f"{self.path}: cam{cam}_events fields have different lengths {lengths}; the file is truncated"
            )
        n = lengths["t"]
        table = self.ms_to_idx(cam)
        if table.size and (np.any(np.diff(table) < 0) or table[0] < 0 or table[-1] > n):
            raise EventFormatError(
                f"{self.path}: cam{cam}_ms_to_idx must be non-decreasing indices in [0, {n}]; "
                f"found values in [{int(table.min())}, {int(table.max())}]"
            )
        t_data, previous = self._field(cam, "t"), None
        for start in range(0, n, _CHECK_CHUNK):
            with _reading(self.path, f"cam{cam}_events/t"):
                chunk = np.asarray(t_data[start : start + _CHECK_CHUNK], dtype=np.int64)
            if previous is not None:
                chunk = np.concatenate([[previous], chunk])
            back = np.flatnonzero(np.diff(chunk) < 0)
            if back.size:
                i = int(back[0]) + start + (0 if previous is None else -1) + 1
                raise EventFormatError(
                    f"{self.path}: cam{cam}_events/t is not monotonic: t={int(chunk[back[0]])} µs then "
                    f"t={int(chunk[back[0] + 1])} µs at event {i}; this recording cannot be windowed by time"
                )
            previous = chunk[-1] if chunk.size else previous

    def events(self, cam: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Events ``start:stop`` of camera ``cam`` as :data:`EVENT_DTYPE` (0-based x/y)."""
        fields = {name: self._field(cam, name) for name in _FIELDS}
        stop = fields["t"].shape[0] if stop is None else stop
        out = np.empty(max(stop - start, 0), dtype=EVENT_DTYPE)
        with _reading(self.path, f"cam{cam}_events[{start}:{stop}]"):
            raw = {name: np.asarray(field[start:stop]) for name, field in fields.items()}
        if any(len(v) != len(out) for v in raw.values()):
            raise EventFormatError(
                f"{self.path}: cam{cam}_events[{start}:{stop}] is shorter than asked "
                f"({ {k: len(v) for k, v in raw.items()} }); the file is truncated"
            )
        for name, dtype in (("x", np.int16), ("y", np.int16), ("p", np.int8)):
            # Checked before the cast into EVENT_DTYPE, which would wrap x=65537 onto pixel 0.
            check_castable(raw[name], f"cam{cam}_events/{name}", dtype, self.path)
        out["x"] = raw["x"].astype(np.int64) - 1
        out["y"] = raw["y"].astype(np.int64) - 1
        out["p"] = raw["p"]
        out["t"] = raw["t"]
        return validate(
            out, DHP19_SENSOR_SIZE, origin=f"{self.path} cam{cam}_events[{start}:{stop}]", allow_unsorted=True
        )


def read_dhp19_events(path: str | Path, cam: int) -> tuple[np.ndarray, np.ndarray]:
    """All events of one camera, checked: ``(events, ms_to_idx)``."""
    with DHP19EventFile(path, check=False) as f:
        f.check_camera(cam)
        return f.events(cam), f.ms_to_idx(cam)


def read_dhp19_labels(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``<stem>_label.h5`` -> ``(poses [N, 3, 13] mm float64, timestamps [N] µs int64)``.

    NaN joints are kept (DHP19 marks missing markers so); NaN or infinite timestamps raise.
    """
    path = Path(path)
    with _open(path) as f:
        poses_data = _dataset(f, "XYZ/3d_poses", path, ndim=3, kinds="iuf")
        timestamps_data = _dataset(f, "XYZ/timestamps", path, kinds="iuf")
        with _reading(path, "XYZ/3d_poses and XYZ/timestamps"):
            poses = np.asarray(poses_data[:], dtype=np.float64)
            timestamps = np.asarray(timestamps_data[:])
    if poses.shape[1:] != (3, len(DHP19_JOINTS)):
        raise EventFormatError(f"{path}: XYZ/3d_poses must have shape [N, 3, 13]; found {poses.shape}")
    if timestamps.shape != poses.shape[:1]:
        raise EventFormatError(
            f"{path}: XYZ/timestamps has shape {timestamps.shape} but XYZ/3d_poses holds {len(poses)} poses"
        )
    # A NaN timestamp would become -2**63 µs in the int64 cast.
    check_castable(timestamps, "XYZ/timestamps", np.int64, path, whole=False)
    return poses, timestamps.astype(np.int64)
