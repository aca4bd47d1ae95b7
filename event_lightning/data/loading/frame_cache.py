"""A disk cache for per-sample representations (frames, voxel grids...) stored as ``.npy``.

Representations are deterministic functions of (source files, transform parameters, code); the
cache keys a folder by a hash of all three, so changing any of them -- a file replaced (size or
mtime), a bin width, the code version constant of the representation -- builds a new folder and
a stale cache is never read. Random choices (window start, flips...) must run AFTER the cache,
on the array it returns (:mod:`event_lightning.data.loading.windows` cuts windows from it).

Usage::

    cache = FrameCache(cache_dir, "dvsgesture-train", files=paths,
                       params={"dt_us": 1000, "downsample": 4}, code_version="1")
    frames = cache.load(i, lambda: build_frames(paths[i]))   # memory-mapped, read-only

Each sample is one ``<index>.npy`` of the smallest of uint8 / int16 that holds its values
(count frames rarely exceed 255 per bin, so most samples take one byte per cell), written to a
temporary name and renamed, so concurrent DataLoader workers or runs never read half a file.
Structured (record) arrays, e.g. the sparse entries of
:func:`event_lightning.data.loading.sparse_counts.to_records`, are stored as they are: their fields already
have their types.
``manifest.json`` in the folder records the parameters for people inspecting the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FrameCache", "cache_key", "compact_integer_dtype"]


def _file_signature(path: Path) -> list[Any]:
    try:
        stat = path.stat()
    except OSError as error:
        raise FileNotFoundError(f"FrameCache: cannot stat source file {path}: {error}") from error
    return [str(path), stat.st_size, stat.st_mtime_ns]


def cache_key(params: Mapping[str, Any], files: Sequence[str | os.PathLike], code_version: str) -> str:
    """SHA-256 (hex) of the JSON of ``params``, ``code_version`` and each file's (path, size, mtime).

    ``params`` must be JSON-serialisable (numbers, strings, lists, dicts); keys are sorted so
    their order does not matter.
    """
    try:
        payload = json.dumps(
            {"params": params, "code_version": code_version, "files": [_file_signature(Path(f)) for f in files]},
            sort_keys=True,
        )
    except TypeError as error:
        raise TypeError(f"FrameCache: params must be JSON-serialisable ({error}); found {params!r}") from error
    return hashlib.sha256(payload.encode()).hexdigest()


def compact_integer_dtype(array: np.ndarray) -> np.dtype:
    """uint8 when every value fits in [0, 255], else int16; raise for values int16 cannot hold."""
    if array.dtype.kind not in "iub":
        raise TypeError(f"FrameCache stores integer arrays; found dtype {array.dtype}")
    if array.size == 0:
        return np.dtype(np.uint8)
    low, high = int(array.min()), int(array.max())
    if 0 <= low and high <= np.iinfo(np.uint8).max:
        return np.dtype(np.uint8)
    info = np.iinfo(np.int16)
    if info.min <= low and high <= info.max:
        return np.dtype(np.int16)
    raise ValueError(f"FrameCache: values in [{low}, {high}] do not fit int16")


class FrameCache:
    """Per-sample ``.npy`` files under ``<cache_dir>/<name>-<key[:16]>/``.

    Args:
        cache_dir: parent folder (created on first write).
        name: a readable prefix of the folder (dataset and split).
        files: the source files the representations are built from; their paths, sizes and
            modification times enter the key.
        params: every parameter that shapes a representation (JSON-serialisable).
        code_version: bump it when the code that builds the representation changes.
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike,
        name: str,
        *,
        files: Sequence[str | os.PathLike],
        params: Mapping[str, Any],
        code_version: str,
    ) -> None:
        self.key = cache_key(params, files, code_version)
        self.directory = Path(cache_dir) / f"{name}-{self.key[:16]}"
        self.params = dict(params)
        self.code_version = code_version
        self.num_files = len(files)

    def path(self, index: int) -> Path:
        """Where sample ``index`` is (or will be) stored."""
        return self.directory / f"{index:07d}.npy"

    def __contains__(self, index: int) -> bool:
        return self.path(index).is_file()

    def _write_manifest(self) -> None:
        manifest = self.directory / "manifest.json"
        if manifest.is_file():
            return
        content = {"key": self.key, "params": self.params, "code_version": self.code_version, "files": self.num_files}
        tmp = manifest.with_name(f".manifest.tmp{os.getpid()}")
        tmp.write_text(json.dumps(content, indent=2, sort_keys=True))
        os.replace(tmp, manifest)

    def store(self, index: int, array: np.ndarray) -> Path:
        """Write ``array`` as sample ``index``: an integer array in its compact dtype, a structured
        array as it is; returns the path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._write_manifest()
        target = self.path(index)
        tmp = target.with_name(f".{target.stem}.tmp{os.getpid()}.npy")
        dtype = array.dtype if array.dtype.names else compact_integer_dtype(array)
        np.save(tmp, np.ascontiguousarray(array, dtype=dtype), allow_pickle=False)
        os.replace(tmp, target)
        return target

    def load(self, index: int, build: Callable[[], np.ndarray]) -> np.ndarray:
        """Sample ``index``, memory-mapped read-only; built with ``build()`` and stored on a miss.

        A cached file that cannot be read (e.g. a disk filled up earlier) is rebuilt once.
        """
        target = self.path(index)
        if not target.is_file():
            self.store(index, build())
        try:
            return np.load(target, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError):
            self.store(index, build())
            return np.load(target, mmap_mode="r", allow_pickle=False)
