"""Reading every event file of a dataset once, in threads, before training.

:func:`pack_event_files` packs the recordings into flat memory-mapped arrays (:class:`PackedEvents`),
so a DataLoader worker draws a whole batch with one gather per field instead of opening one file
per sample; the cache folder is named by :func:`packed_cache_key`. :func:`scan_spans` only
measures each recording's duration. Both leave bad files out when asked (``on_bad_sample: skip``,
see :mod:`event_lightning.data.loading.bad_samples`) instead of failing on the first.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from event_lightning.data.loading.bad_samples import BAD_SAMPLE_ERRORS
from event_lightning.events.core import EventFormatError, SensorSize
from event_lightning.events.formats.asl_dvs_mat import ASL_DVS_SENSOR_SIZE

__all__ = ["EventReader", "PackedEvents", "pack_event_files", "packed_cache_key", "scan_spans"]

_PACK_VERSION = 1
_FIELDS = ("x", "y", "p", "t")
EventReader = Callable[[str | os.PathLike], np.ndarray]
"""``path -> events``: a picklable reader of one recording file."""


class PackedEvents:
    """Recordings packed into flat memory-mapped arrays: events of recording ``i`` are
    ``offsets[i]:offsets[i+1]`` of ``x``, ``y``, ``p`` and ``t`` (µs since the recording's first
    event, uint32).  ``spans[i]`` is that recording's duration in µs."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        meta_path = self.directory / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{self.directory}: no packed events (meta.json missing)")
        self.meta = json.loads(meta_path.read_text())
        self.offsets = np.load(self.directory / "offsets.npy")
        self.spans = np.load(self.directory / "spans.npy")
        self._columns: dict[str, np.ndarray] | None = None

    @property
    def skipped(self) -> list[tuple[int, str, str]]:
        """``(index, file, reason)`` of the recordings left out as bad (packed with no events)."""
        return [(int(i), str(file), str(reason)) for i, file, reason in self.meta.get("skipped", [])]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def columns(self) -> dict[str, np.ndarray]:
        """The four fields as read-only memory maps (opened lazily, once per process)."""
        if self._columns is None:
            total = int(self.offsets[-1])
            self._columns = {
                field: np.memmap(
                    self.directory / f"{field}.bin",
                    dtype=self.meta["dtypes"][field],
                    mode="r",
                    shape=(total,),
                )
                if total
                else np.zeros(0, dtype=self.meta["dtypes"][field])
                for field in _FIELDS
            }
        return self._columns

    def __getstate__(self) -> dict:
        # Workers re-open the memory maps instead of receiving a pickled copy of the data.
        return {**self.__dict__, "_columns": None}


def packed_cache_key(paths: Sequence[Path], settings: dict) -> str:
    """The name of the packed cache of ``paths`` read with ``settings``: a hash of both, of every
    file's size and modification time, and of the pack format version."""
    digest = hashlib.sha256(json.dumps({**settings, "version": _PACK_VERSION}, sort_keys=True).encode())
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def pack_event_files(
    paths: Sequence[Path],
    reader: EventReader,
    directory: str | os.PathLike,
    sensor_size: SensorSize = ASL_DVS_SENSOR_SIZE,
    *,
    threads: int = 8,
    skip_bad: bool = False,
) -> PackedEvents:
    """Read every file once (``threads`` at a time, in order) and pack it into ``directory``.

    Bad files fail here, before training, with the reader's error naming the file; with
    ``skip_bad`` they are packed as recordings without events and listed with their reason in
    :attr:`PackedEvents.skipped` instead.  The cache is written to a temporary folder and renamed
    when complete, so an interrupted build never leaves a half cache behind.  An existing
    complete cache is opened as it is (without ``skip_bad``, one that left bad files out raises
    naming the first).
    """
    directory = Path(directory)
    if (directory / "meta.json").is_file():
        packed = PackedEvents(directory)
        if packed.skipped and not skip_bad:
            _, file, reason = packed.skipped[0]
            raise EventFormatError(
                f"{file}: {reason} (one of {len(packed.skipped)} bad file(s) left out of the packed cache "
                f"{directory}, built with on_bad_sample: skip)"
            )
        return packed
    coordinate = "uint8" if max(sensor_size.width, sensor_size.height) <= 256 else "uint16"
    dtypes = {"x": coordinate, "y": coordinate, "p": "uint8", "t": "uint32"}
    limit = np.iinfo(np.uint32).max
    tmp = directory.with_name(f"{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    counts = np.zeros(len(paths), dtype=np.int64)
    spans = np.zeros(len(paths), dtype=np.int64)
    skipped: list[tuple[int, str, str]] = []
    handles = {field: open(tmp / f"{field}.bin", "wb") for field in _FIELDS}
    read = functools.partial(_read_or_error, reader) if skip_bad else reader
    try:
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            for i, events in enumerate(pool.map(read, paths)):
                if not isinstance(events, BaseException):
                    relative = events["t"] - events["t"][0] if len(events) else events["t"]
                    span = int(relative[-1]) if len(events) else 0
                    if span > limit:
                        too_long = EventFormatError(
                            f"{paths[i]}: recording spans {span} µs, more than the {limit} µs packable"
                        )
                        if not skip_bad:
                            raise too_long
                        events = too_long
                if isinstance(events, BaseException):
                    skipped.append((i, str(paths[i]), f"{type(events).__name__}: {events}"))
                    continue  # packed without events: the offsets keep one entry per path
                counts[i], spans[i] = len(events), span
                for field in ("x", "y", "p"):
                    handles[field].write(events[field].astype(dtypes[field]).tobytes())
                handles["t"].write(relative.astype(np.uint32).tobytes())
    except BaseException:
        for handle in handles.values():
            handle.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for handle in handles.values():
        handle.close()
    np.save(tmp / "offsets.npy", np.concatenate(([0], np.cumsum(counts))))
    np.save(tmp / "spans.npy", spans)
    meta = {"dtypes": dtypes, "files": [str(p) for p in paths], "skipped": skipped}
    (tmp / "meta.json").write_text(json.dumps(meta))
    try:
        os.replace(tmp, directory)
    except OSError:
        # Another process finished the same cache first; use theirs.
        shutil.rmtree(tmp, ignore_errors=True)
    return PackedEvents(directory)


def _read_or_error(reader: EventReader, path: Path) -> np.ndarray | BaseException:
    """The reader's events, or the bad-file error it raised (for ``on_bad_sample: skip``)."""
    try:
        return reader(path)
    except BAD_SAMPLE_ERRORS as error:
        return error


def scan_spans(
    paths: Sequence[Path], reader: EventReader, threads: int, skip_bad: bool = False
) -> tuple[np.ndarray, dict[int, str]]:
    """Duration (µs) of each recording, and ``{position: reason}`` of the bad ones (span 0)
    when ``skip_bad`` (else their error propagates)."""
    read = functools.partial(_read_or_error, reader) if skip_bad else reader
    spans = np.zeros(len(paths), dtype=np.int64)
    bad: dict[int, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for i, events in enumerate(pool.map(read, paths)):
            if isinstance(events, BaseException):
                bad[i] = f"{type(events).__name__}: {events}"
            elif len(events):
                spans[i] = int(events["t"][-1] - events["t"][0])
    return spans, bad
