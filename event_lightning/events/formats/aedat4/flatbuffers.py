"""FlatBuffers read by hand (``struct`` on a memoryview), with every offset checked against its buffer.

Errors name the file and the buffer (IOHeader, a packet, the data table), what was expected and
what was found.
"""

from __future__ import annotations

import struct
from pathlib import Path

from event_lightning.events.core import EventFormatError


class _FlatBuffer:
    """Bounds-checked reads of one FlatBuffer; every failure names the file and the buffer."""

    def __init__(self, data: bytes | memoryview, origin: str | Path, what: str) -> None:
        self.data = data
        self.origin = origin
        self.what = what

    def fail(self, expected: str, found: str) -> EventFormatError:
        return EventFormatError(f"{self.origin}: {self.what}: expected {expected}, found {found}")

    def unpack(self, fmt: str, pos: int, name: str) -> int:
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > len(self.data):
            raise self.fail(f"{name} ({size} bytes) inside the {len(self.data)}-byte buffer", f"offset {pos}")
        return struct.unpack_from(fmt, self.data, pos)[0]

    def root(self, identifier: bytes | None) -> int:
        """Position of the root table; checks the 4-byte file identifier when one is given."""
        if identifier is not None:
            found = bytes(self.data[4:8])
            if found != identifier:
                raise self.fail(f"file identifier {identifier!r} at bytes 4..8", repr(found))
        return self.unpack("<I", 0, "the root table offset")

    def vtable(self, table: int) -> tuple[int, int, int]:
        """``(vtable position, vtable size, table inline size)`` of the table at ``table``."""
        vtable = table - self.unpack("<i", table, "the table's vtable offset")
        vtable_size = self.unpack("<H", vtable, "the vtable size")
        table_size = self.unpack("<H", vtable + 2, "the table size")
        if vtable_size < 4 or vtable_size % 2 or vtable + vtable_size > len(self.data):
            raise self.fail(
                f"a vtable of even size >= 4 inside the {len(self.data)}-byte buffer",
                f"size {vtable_size} at offset {vtable}",
            )
        if table_size < 4 or table + table_size > len(self.data):
            raise self.fail(
                f"a table of size >= 4 inside the {len(self.data)}-byte buffer",
                f"size {table_size} at offset {table}",
            )
        return vtable, vtable_size, table_size

    def field(self, table: int, index: int, size: int) -> int | None:
        """Position of field ``index`` (``size`` bytes inline) of a table, or None when absent."""
        vtable, vtable_size, table_size = self.vtable(table)
        if 4 + 2 * index + 2 > vtable_size:
            return None
        offset = self.unpack("<H", vtable + 4 + 2 * index, f"field {index}'s offset")
        if offset == 0:
            return None
        if offset < 4 or offset + size > table_size:
            raise self.fail(
                f"field {index} ({size} bytes) inside its {table_size}-byte table", f"field offset {offset}"
            )
        return table + offset

    def scalar(self, table: int, index: int, fmt: str, default: int, name: str) -> int:
        pos = self.field(table, index, struct.calcsize(fmt))
        return default if pos is None else self.unpack(fmt, pos, name)

    def reference(self, table: int, index: int, name: str) -> int | None:
        """Follow the uoffset of field ``index`` (a string, vector or table); None when absent."""
        pos = self.field(table, index, 4)
        return None if pos is None else pos + self.unpack("<I", pos, name)

    def vector(self, pos: int, element_size: int, name: str) -> tuple[int, int]:
        """``(start of the elements, element count)`` of the vector at ``pos``."""
        count = self.unpack("<I", pos, f"the length of {name}")
        start = pos + 4
        if start + count * element_size > len(self.data):
            raise self.fail(
                f"{name} ({count} x {element_size} bytes from offset {start}) inside the {len(self.data)}-byte buffer",
                f"{start + count * element_size - len(self.data)} byte(s) missing",
            )
        return start, count


def _size_prefixed(data: bytes | memoryview, origin: str | Path, what: str) -> _FlatBuffer:
    """The FlatBuffer after a uint32 size prefix, which must match the bytes that follow it."""
    if len(data) < 8:
        raise EventFormatError(f"{origin}: {what}: expected at least 8 bytes (size prefix + root), found {len(data)}")
    size = struct.unpack_from("<I", data, 0)[0]
    if size != len(data) - 4:
        raise EventFormatError(
            f"{origin}: {what}: expected its size prefix to equal the {len(data) - 4} bytes that follow, found {size}"
        )
    return _FlatBuffer(memoryview(data)[4:], origin, what)
