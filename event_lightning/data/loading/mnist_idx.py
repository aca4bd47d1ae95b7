"""MNIST's on-disk format: IDX files, and the names of the four files of the MNIST release.

An IDX file is two zero bytes, a type code, the number of dimensions n, then n big-endian uint32
sizes, then the data in C order, big-endian. :func:`read_idx` reads one (gzipped or not) and checks
it against its header; :func:`write_idx` writes one. The MNIST sequences of
:mod:`event_lightning.data.datasets.mnist` read the real release with them, and the stand-in of
:mod:`event_lightning.data.standins.mnist` writes its digits in the same four files.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path
from typing import IO

import numpy as np

from event_lightning.events.formats.limits import check_declared_bytes, expansion_budget, read_exact

__all__ = ["IDXFormatError", "MNIST_FILES", "read_idx", "write_idx"]

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# IDX type codes (third magic byte) -> big-endian numpy dtypes.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}


class IDXFormatError(ValueError):
    """An IDX file that does not hold what its header or the caller says."""


def _open(path: Path) -> IO[bytes]:
    try:
        return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    except OSError as err:
        raise IDXFormatError(f"{path}: cannot open ({err})") from err


def read_idx(path: str | Path, expected_ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array in native byte order.

    The header is two zero bytes, a type code, the number of dimensions n, then n big-endian
    uint32 sizes; the data follow in C order, big-endian. The size the header declares is
    checked before anything is allocated: it must equal the bytes that follow (plain files) or
    fit the decompression budget of :mod:`event_lightning.events.formats.limits` (``.gz``, which
    is streamed), so a crafted header or a gzip bomb raises :class:`IDXFormatError`.
    """
    path = Path(path)
    try:
        with _open(path) as stream:
            return _read_idx(stream, path, expected_ndim)
    except (OSError, EOFError, zlib.error) as err:
        state = "a readable gzip file" if path.suffix == ".gz" else "readable"
        raise IDXFormatError(f"{path}: not {state} ({type(err).__name__}: {err})") from err


def _read_idx(stream: IO[bytes], path: Path, expected_ndim: int | None) -> np.ndarray:
    magic = stream.read(4)
    if len(magic) < 4:
        raise IDXFormatError(f"{path}: {len(magic)} bytes, too short for the 4-byte IDX magic number")
    if magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_DTYPES:
        raise IDXFormatError(
            f"{path}: bad IDX magic number 0x{magic.hex()}; expected 0x0000TTNN with type TT in "
            f"{{{', '.join(f'{c:02x}' for c in _IDX_DTYPES)}}} (MNIST images 0x00000803, labels 0x00000801)"
        )
    ndim = magic[3]
    if expected_ndim is not None and ndim != expected_ndim:
        raise IDXFormatError(f"{path}: expected a {expected_ndim}-D IDX array, the header says {ndim}-D")
    sizes = stream.read(4 * ndim)
    header = 4 + 4 * ndim
    if len(sizes) < 4 * ndim:
        raise IDXFormatError(f"{path}: truncated header; {ndim} dimensions need {header} bytes, found {4 + len(sizes)}")
    shape = tuple(int(s) for s in np.frombuffer(sizes, dtype=">u4"))
    dtype = np.dtype(_IDX_DTYPES[magic[2]])
    expected = math.prod(shape) * dtype.itemsize
    file_size = path.stat().st_size
    if path.suffix == ".gz":
        check_declared_bytes(expected, expansion_budget(file_size), path, f"the header (shape {shape})", IDXFormatError)
    elif file_size - header != expected:
        state = "truncated" if file_size - header < expected else "has trailing bytes"
        raise IDXFormatError(
            f"{path}: {state}; shape {shape} of {dtype.name} needs {expected} data bytes, found {file_size - header}"
        )
    raw = read_exact(stream, expected, str(path), IDXFormatError)
    if stream.read(1):
        raise IDXFormatError(f"{path}: has trailing bytes; shape {shape} of {dtype.name} needs {expected} data bytes")
    return raw.view(dtype).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as an uncompressed IDX file (the format :func:`read_idx` reads)."""
    path = Path(path)
    array = np.ascontiguousarray(array)
    if array.dtype not in _IDX_CODES:
        raise ValueError(f"IDX cannot store dtype {array.dtype}; use one of {sorted(str(d) for d in _IDX_CODES)}")
    header = bytes([0, 0, _IDX_CODES[array.dtype], array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + array.astype(array.dtype.newbyteorder(">")).tobytes())
    return path
