"""Bounded reading of numpy ``.npy`` files and ``.npz`` archives: the header first, then exactly its bytes.

``np.load`` allocates whatever a header declares before it reads a byte (a 200-byte ``.npy``
declaring ``(10**9, 4)`` asks for 30 GB) and decompresses an ``.npz`` member whole before its
length is checked. These readers parse the header, compare the declared size with what the
file can hold (:mod:`event_lightning.events.formats.limits`), and only then allocate and read,
streaming compressed members in chunks. Object arrays are refused (never unpickled). Every
problem raises ``error`` (the calling reader's format error) naming the file and the key.
"""

from __future__ import annotations

import io
import math
import os
import threading
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from numpy.lib import format as npy_format

from event_lightning.events.core import EventFormatError
from event_lightning.events.formats.limits import READ_CHUNK_BYTES, check_declared_bytes, expansion_budget, read_exact

__all__ = ["NpyHeader", "NpzReader", "read_npy"]

# numpy parses each .npy header with ast.literal_eval, and CPython 3.11's AST constructor is not
# thread-safe: concurrent reads (ASL-DVS scans and packs files with a thread pool) intermittently
# fail with "SystemError: AST constructor recursion depth mismatch". Header parses take turns.
_HEADER_LOCK = threading.Lock()
_MAX_HEADER_BYTES = 10_000  # numpy's own limit (max_header_size)
# numpy writes stored or deflated members; zipfile inflates bzip2 / lzma members without a size cap.
_MEMBER_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
DEFLATE_MAX_RATIO = 1032
"""DEFLATE cannot expand one byte into more than 1032 (RFC 1951: 258-byte matches in 2-bit codes, roughly)."""


@dataclass(frozen=True)
class NpyHeader:
    """What a ``.npy`` header declares; ``offset`` is where its data start in the stream."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    offset: int

    @property
    def count(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.count * self.dtype.itemsize


def _read_header(stream: IO[bytes], origin: str, error: type[Exception]) -> NpyHeader:
    """The header at the start of ``stream``; its length is checked before it is read (numpy reads
    whatever length a header claims, up to 4 GiB, before its own size check)."""
    magic = stream.read(len(npy_format.MAGIC_PREFIX) + 2)
    if len(magic) < len(npy_format.MAGIC_PREFIX) + 2 or not magic.startswith(npy_format.MAGIC_PREFIX):
        raise error(
            f"{origin}: expected the .npy magic {npy_format.MAGIC_PREFIX!r}, found {magic[:8]!r}: the file is "
            "truncated or not a .npy file; re-copy or regenerate it"
        )
    version = (magic[-2], magic[-1])
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise error(f"{origin}: expected .npy format version 1.0, 2.0 or 3.0, found {version[0]}.{version[1]}")
    length_bytes = stream.read(2 if version == (1, 0) else 4)
    length = int.from_bytes(length_bytes, "little")
    if len(length_bytes) < (2 if version == (1, 0) else 4) or length > _MAX_HEADER_BYTES:
        raise error(
            f"{origin}: expected a .npy header of at most {_MAX_HEADER_BYTES} bytes, found a length of {length}"
        )
    text = stream.read(length)
    parse = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
    try:
        with _HEADER_LOCK:
            shape, fortran_order, dtype = parse(io.BytesIO(length_bytes + text))
    except Exception as failure:  # numpy's header parser raises ValueError, SyntaxError, TokenError ...
        raise error(
            f"{origin}: not a readable .npy array header ({type(failure).__name__}: {failure}): the file is "
            "truncated or not a .npy file; re-copy or regenerate it"
        ) from failure
    if dtype.hasobject or dtype.itemsize == 0:
        raise error(f"{origin}: expected a numeric array, found dtype {dtype} (object arrays are never unpickled)")
    return NpyHeader(tuple(int(s) for s in shape), dtype, bool(fortran_order), len(magic) + len(length_bytes) + length)


def _as_array(raw: np.ndarray, header: NpyHeader) -> np.ndarray:
    return raw.view(header.dtype).reshape(header.shape, order="F" if header.fortran_order else "C")


def read_npy(path: str | os.PathLike, *, error: type[Exception] = EventFormatError) -> np.ndarray:
    """Read a ``.npy`` file whose header declares exactly the bytes that follow it.

    Raises ``error`` naming ``path`` for an unreadable header, an object dtype, a file shorter or
    longer than its header declares, or an OS error.
    """
    path = Path(path)
    try:
        with open(path, "rb") as stream:
            header = _read_header(stream, str(path), error)
            stored = os.fstat(stream.fileno()).st_size - header.offset
            if stored != header.nbytes:
                state = "truncated" if stored < header.nbytes else f"followed by {stored - header.nbytes} extra byte(s)"
                raise error(
                    f"{path}: the header declares shape {header.shape} of {header.dtype} ({header.nbytes} bytes), "
                    f"but {stored} byte(s) follow it: the file is {state}; re-copy or regenerate it"
                )
            return _as_array(read_exact(stream, header.nbytes, str(path), error), header)
    except OSError as failure:
        raise error(f"{path}: cannot read the .npy file ({failure})") from failure


class NpzReader:
    """Members of a ``.npz`` archive read within one allocation budget for the whole file.

    The budget is :func:`~event_lightning.events.formats.limits.expansion_budget` of the file
    size (``budget`` overrides it; a caller that streams selected rows may add what it asked for
    to :attr:`budget`). Each member's declared size must also fit what its stored bytes can
    inflate to. Use as a context manager::

        with NpzReader(path) as archive:
            t = archive.read("t")

    Raises ``error`` naming the file and the key for an unreadable archive, a missing key, an
    object dtype, a member whose header disagrees with the archive's size for it, a declared
    size over the budget, a bad CRC or a truncated member.
    """

    def __init__(
        self, path: str | os.PathLike, *, error: type[Exception] = EventFormatError, budget: int | None = None
    ) -> None:
        self.path, self.error = Path(path), error
        try:
            self._zip = zipfile.ZipFile(self.path)
            size = self.path.stat().st_size
        except (OSError, zipfile.BadZipFile, ValueError, EOFError) as failure:
            raise error(
                f"{self.path}: not a readable .npz archive ({type(failure).__name__}: {failure}); the file is "
                "truncated or not an .npz: re-copy or regenerate it"
            ) from failure
        self.budget = expansion_budget(size) if budget is None else budget
        self.keys = [name[:-4] for name in self._zip.namelist() if name.endswith(".npy")]

    def __enter__(self) -> NpzReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._zip.close()

    def missing(self, keys: Sequence[str]) -> list[str]:
        """The ``keys`` the archive does not hold."""
        return [key for key in keys if key not in self.keys]

    def header(self, key: str) -> NpyHeader:
        """What the member ``key`` declares (its shape and dtype), without reading its data."""
        with self._member(key) as (header, _, _):
            return header

    def read(self, key: str, rows: np.ndarray | None = None) -> np.ndarray:
        """The array stored under ``key``; with ``rows`` (sorted unique indices along axis 0 of a C-order
        array) only those rows, streamed so that the rest is never held in memory."""
        with self._member(key) as (header, stream, origin):
            if rows is None:
                self._spend(header.nbytes, origin)
                array = _as_array(read_exact(stream, header.nbytes, origin, self.error), header)
            else:
                array = self._read_rows(stream, header, rows, origin)
            if stream.read(1):
                raise self.error(f"{origin}: the member holds more bytes than its header declares")
            return array

    @contextmanager
    def _member(self, key: str) -> Iterator[tuple[NpyHeader, IO[bytes], str]]:
        """The open member ``key`` after its header, with the header checked against the archive."""
        origin = f"{self.path} key {key!r}"
        if key not in self.keys:
            raise self.error(f"{self.path}: missing key {key!r}; found keys {self.keys}")
        info = self._zip.getinfo(f"{key}.npy")
        if info.compress_type not in _MEMBER_COMPRESSIONS:
            raise self.error(
                f"{origin}: expected a stored or deflated member, found zip compression {info.compress_type}"
            )
        # What the member can physically hold, before a byte of it is inflated.
        limit = info.compress_size * (1 if info.compress_type == zipfile.ZIP_STORED else DEFLATE_MAX_RATIO)
        check_declared_bytes(info.file_size, limit, origin, "the archive's size of the member", self.error)
        try:
            with self._zip.open(info) as stream:
                header = _read_header(stream, origin, self.error)
                if header.offset + header.nbytes != info.file_size:
                    raise self.error(
                        f"{origin}: the .npy header declares shape {header.shape} of {header.dtype} "
                        f"({header.nbytes} bytes), but the archive stores {info.file_size - header.offset} data bytes"
                    )
                yield header, stream, origin
        except (OSError, zipfile.BadZipFile, EOFError, ValueError) as failure:
            if isinstance(failure, self.error):
                raise
            raise self.error(f"{origin}: cannot read the member ({type(failure).__name__}: {failure})") from failure

    def _spend(self, nbytes: int, origin: str) -> None:
        check_declared_bytes(nbytes, self.budget, origin, "the array", self.error)
        self.budget -= nbytes

    def _read_rows(self, stream: IO[bytes], header: NpyHeader, rows: np.ndarray, origin: str) -> np.ndarray:
        if header.fortran_order or not header.shape:
            raise self.error(f"{origin}: expected a C-order array with rows, found shape {header.shape}")
        n_rows = header.shape[0]
        row_bytes = header.nbytes // n_rows if n_rows else 0
        if rows.size and (rows[0] < 0 or rows[-1] >= n_rows):
            raise self.error(f"{origin}: rows up to {int(rows[-1])} are needed, the array has {n_rows}")
        self._spend(rows.size * row_bytes, origin)
        out = np.empty((rows.size, row_bytes), dtype=np.uint8)
        per_chunk = max(READ_CHUNK_BYTES // max(row_bytes, 1), 1)
        # All of it (the CRC is checked at the end); rows of zero bytes have nothing to read.
        for first in range(0, n_rows if row_bytes else 0, per_chunk):
            count = min(per_chunk, n_rows - first)
            chunk = read_exact(stream, count * row_bytes, origin, self.error).reshape(count, row_bytes)
            lo, hi = np.searchsorted(rows, [first, first + count])
            out[lo:hi] = chunk[rows[lo:hi] - first]
        return out.reshape(-1).view(header.dtype).reshape(rows.size, *header.shape[1:])
