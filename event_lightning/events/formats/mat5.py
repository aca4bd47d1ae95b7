"""Bounded reading of numeric variables from MATLAB v5 / v7 ``.mat`` files (what ``scipy.io.loadmat`` reads).

``scipy.io.loadmat`` inflates a compressed variable whole and allocates whatever its header
declares: a 778 KB file holding a compressed ``ts`` of 1e8 zeros costs 1.2 GB before any check
can run. :func:`read_mat_variables` walks the file's top-level data elements itself, reads each
wanted variable's header (array flags, dimensions, name, the tag of its data) -- inflating a
compressed one only as far as its header, then up to the file's
:func:`~event_lightning.events.formats.limits.expansion_budget` -- checks the declared sizes, and
only then hands the wanted variables, uncompressed, to ``scipy.io.loadmat``.

Layout (MAT-File Format, MathWorks): a 128-byte header (text, subsystem offset, version 0x0100,
endian indicator ``IM`` little / ``MI`` big), then data elements ``uint32 type, uint32 nbytes,
data`` (small elements pack ``nbytes << 16 | type`` and 4 data bytes in 8 bytes). A variable is a
``miMATRIX`` element (array flags, dimensions, name, real part, imaginary part) or a
``miCOMPRESSED`` element holding one zlib-compressed ``miMATRIX``. MAT v4 and v7.3 (HDF5) files
are refused with a message saying so.
"""

from __future__ import annotations

import io
import math
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io

from event_lightning.events.core import EventFormatError
from event_lightning.events.formats.limits import check_declared_bytes, expansion_budget

__all__ = ["read_mat_variables"]

_HEADER_BYTES = 128
_MI_INT8, _MI_UINT32, _MI_INT32, _MI_MATRIX, _MI_COMPRESSED = 1, 6, 5, 14, 15
# Bytes per element of the numeric MATLAB classes (mxDOUBLE_CLASS = 6 ... mxUINT64_CLASS = 15).
_CLASS_ITEMSIZE = {6: 8, 7: 4, 8: 1, 9: 1, 10: 2, 11: 2, 12: 4, 13: 4, 14: 8, 15: 8}
_COMPLEX_FLAG = 0x800
# Bytes of the data-element types a numeric array may be stored in (miINT8 ... miUINT64).
_TYPE_ITEMSIZE = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 9: 8, 12: 8, 13: 8}
# An inflated header holds flags (16 bytes), dimensions, a name and the data tag: far below this.
_HEADER_PEEK = 4096


@dataclass(frozen=True)
class _Variable:
    name: str
    mclass: int
    dims: tuple[int, ...]
    complex: bool
    data_type: int
    data_bytes: int


def _fail(origin: Path, message: str) -> EventFormatError:
    return EventFormatError(f"{origin}: {message}")


def _tag(buffer: bytes, pos: int, order: str, origin: Path, what: str) -> tuple[int, int, int, int]:
    """``(type, nbytes, data position, next element position)`` of the data element at ``pos``
    (small elements included; data padded to 8 bytes)."""
    if pos + 8 > len(buffer):
        raise _fail(origin, f"{what}: expected an 8-byte data-element tag at byte {pos}, found {len(buffer) - pos}")
    first, second = struct.unpack_from(order + "II", buffer, pos)
    if first >> 16:  # small data element: nbytes in the upper half, data in the next 4 bytes
        return first & 0xFFFF, first >> 16, pos + 4, pos + 8
    return first, second, pos + 8, pos + 8 + second + (-second % 8)


def _matrix_header(element: bytes, order: str, origin: Path) -> _Variable:
    """Flags, dimensions, name and data tag of one ``miMATRIX`` element's content."""
    flags_type, flags_bytes, pos, after = _tag(element, 0, order, origin, "array flags")
    if flags_type != _MI_UINT32 or flags_bytes != 8 or pos + 8 > len(element):
        raise _fail(origin, f"expected 8 bytes of miUINT32 array flags, found type {flags_type}, {flags_bytes} bytes")
    flags = struct.unpack_from(order + "I", element, pos)[0]
    dims_type, dims_bytes, pos, after = _tag(element, after, order, origin, "dimensions")
    if dims_type != _MI_INT32 or dims_bytes % 4 or dims_bytes < 8 or pos + dims_bytes > len(element):
        raise _fail(origin, f"expected miINT32 dimensions (2 or more), found type {dims_type}, {dims_bytes} bytes")
    dims = struct.unpack_from(order + f"{dims_bytes // 4}i", element, pos)
    name_type, name_bytes, pos, after = _tag(element, after, order, origin, "name")
    if name_type != _MI_INT8 or pos + name_bytes > len(element):
        raise _fail(origin, f"expected an miINT8 array name, found type {name_type}, {name_bytes} bytes")
    name = element[pos : pos + name_bytes].decode("latin-1")
    if any(d < 0 for d in dims):
        raise _fail(origin, f"variable {name!r}: expected non-negative dimensions, found {dims}")
    data_type, data_bytes = 0, 0
    if flags & 0xFF in _CLASS_ITEMSIZE:
        data_type, data_bytes, _, _ = _tag(element, after, order, origin, f"variable {name!r} data")
    return _Variable(name, flags & 0xFF, tuple(dims), bool(flags & _COMPLEX_FLAG), data_type, data_bytes)


def _inflate(payload: bytes, limit: int, origin: Path, what: str) -> bytes:
    """At most ``limit`` bytes of the zlib stream ``payload`` (fewer when it ends first)."""
    decoder = zlib.decompressobj()
    try:
        return decoder.decompress(payload, limit)
    except zlib.error as failure:
        raise _fail(
            origin, f"{what}: expected a zlib-compressed variable; decompression failed: {failure}"
        ) from failure


def _check_variable(variable: _Variable, budget: int, origin: Path) -> int:
    """Bytes ``variable`` will occupy once loaded; raises unless its header is a numeric array within ``budget``."""
    what = f"variable {variable.name!r}"
    if variable.mclass not in _CLASS_ITEMSIZE:
        raise _fail(origin, f"{what}: expected a numeric array, found MATLAB class {variable.mclass}")
    count = math.prod(variable.dims)
    declared = count * _CLASS_ITEMSIZE[variable.mclass] * (2 if variable.complex else 1)
    check_declared_bytes(declared, budget, origin, f"{what} (dimensions {variable.dims})")
    itemsize = _TYPE_ITEMSIZE.get(variable.data_type)
    if itemsize is None or variable.data_bytes != count * itemsize:
        raise _fail(
            origin,
            f"{what}: dimensions {variable.dims} need {count} stored numbers; found a data element of type "
            f"{variable.data_type} holding {variable.data_bytes} bytes",
        )
    return declared


def read_mat_variables(path: str | os.PathLike, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The numeric variables ``names`` of a MATLAB v5 / v7 ``.mat`` file (those it holds), as loadmat gives them.

    Raises :class:`EventFormatError` naming ``path`` (and the variable) for a file that is not a
    v5 / v7 MAT file, a malformed or truncated element, a declared size over the file's budget, a
    wanted variable that is not a numeric array, or a file scipy cannot parse.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as failure:
        raise _fail(path, f"cannot read the .mat file ({failure})") from failure
    if len(data) < _HEADER_BYTES:
        raise _fail(
            path, f"expected a 128-byte MAT-file header, found {len(data)} byte(s): truncated or not a .mat file"
        )
    indicator = data[126:128]
    if indicator not in (b"IM", b"MI"):
        raise _fail(path, f"expected a MATLAB v5/v7 .mat file (endian indicator 'IM' or 'MI'), found {indicator!r}")
    order = "<" if indicator == b"IM" else ">"
    version = struct.unpack_from(order + "H", data, 124)[0]
    if version != 0x0100:
        hint = " (v7.3 files are HDF5: re-save with save(..., '-v7'))" if version == 0x0200 else ""
        raise _fail(path, f"expected MAT-file version 0x0100, found 0x{version:04x}{hint}")
    budget, kept = expansion_budget(len(data)), [data[:_HEADER_BYTES]]
    pos = _HEADER_BYTES
    while pos < len(data):
        element_type, nbytes, start, after = _tag(data, pos, order, path, "variable")
        end = start + nbytes
        if element_type not in (_MI_MATRIX, _MI_COMPRESSED) or end > len(data):
            raise _fail(
                path,
                f"variable at byte {pos}: expected an miMATRIX or miCOMPRESSED element of {nbytes} bytes inside "
                f"the {len(data)}-byte file, found type {element_type}",
            )
        if element_type == _MI_COMPRESSED:
            payload = data[start:end]
            peek = _inflate(payload, _HEADER_PEEK, path, f"variable at byte {pos}")
            inner_type, inner_bytes, inner_start, _ = _tag(peek, 0, order, path, f"variable at byte {pos}")
            if inner_type != _MI_MATRIX:
                raise _fail(path, f"variable at byte {pos}: expected a compressed miMATRIX, found type {inner_type}")
            variable = _matrix_header(peek[inner_start:], order, path)
            if variable.name in names:
                budget -= _check_variable(variable, budget, path)
                # what inflating costs is checked too: a header may describe less than its element holds
                budget -= check_declared_bytes(inner_bytes, budget, path, f"variable {variable.name!r}")
                content = _inflate(payload, inner_start + inner_bytes, path, f"variable {variable.name!r}")
                if len(content) != inner_start + inner_bytes:
                    raise _fail(path, f"variable {variable.name!r}: the compressed data end early: truncated")
                kept.append(content + b"\0" * (-len(content) % 8))
            pos = end  # compressed elements are not padded
        else:
            variable = _matrix_header(data[start:end], order, path)
            if variable.name in names:
                budget -= _check_variable(variable, budget, path)
                kept.append(data[pos:after])
            pos = after
    try:
        content = scipy.io.loadmat(io.BytesIO(b"".join(kept)), variable_names=list(names))
    except Exception as failure:  # scipy raises MatReadError, ValueError, TypeError ... on corrupt elements
        raise _fail(path, f"not a readable MATLAB .mat file ({type(failure).__name__}: {failure})") from failure
    return {name: np.asarray(content[name]) for name in names if name in content}
