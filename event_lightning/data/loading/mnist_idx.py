"""MNIST's on-disk format: IDX files, and the names of the four files of the MNIST release.

An IDX file is two zero bytes, a type code, the number of dimensions n, then n big-endian uint32
sizes, then the data in C order, big-endian. :func:`read_idx` reads one (gzipped or not) and checks
it against its header; :func:`write_idx` writes one. The MNIST sequences of
:mod:`event_lightning.data.datasets.mnist` read the real release with them, and the stand-in of
:mod:`event_lightning.data.standins.mnist` writes its digits in the same four files.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

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


def _read_bytes(path: Path) -> bytes:
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as f:
                return f.read()
        except (OSError, EOFError) as err:
            raise IDXFormatError(f"{path}: not a readable gzip file ({err})") from err
    return path.read_bytes()


def read_idx(path: str | Path, expected_ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array in native byte order.

    The header is two zero bytes, a type code, the number of dimensions n, then n big-endian
    uint32 sizes; the data follow in C order, big-endian.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise IDXFormatError(f"{path}: {len(raw)} bytes, too short for the 4-byte IDX magic number")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise IDXFormatError(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()}; expected 0x0000TTNN with type TT in "
            f"{{{', '.join(f'{c:02x}' for c in _IDX_DTYPES)}}} (MNIST images 0x00000803, labels 0x00000801)"
        )
    ndim = raw[3]
    if expected_ndim is not None and ndim != expected_ndim:
        raise IDXFormatError(f"{path}: expected a {expected_ndim}-D IDX array, the header says {ndim}-D")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXFormatError(f"{path}: truncated header; {ndim} dimensions need {header} bytes, found {len(raw)}")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header
    if found != expected:
        state = "truncated" if found < expected else "has trailing bytes"
        raise IDXFormatError(
            f"{path}: {state}; shape {shape} of {dtype.name} needs {expected} data bytes, found {found}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


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
