"""AEDAT 4.0 recordings (iniVation DV): event streams read into :data:`EVENT_DTYPE`, and a writer.

File layout (all integers little-endian)::

    "#!AER-DAT4.0\\r\\n"                      14-byte magic
    uint32 N, IOHeader FlatBuffer [N]         compression enum, data-table position, XML description
    packets, one after another:
        int32 stream id, int32 size S,
        S bytes: the packet FlatBuffer, size-prefixed, compressed with the file's compression
    optional file data table at the data-table position (a compressed size-prefixed "FTAB" buffer
    listing every packet's byte offset, stream id, size, element count and first/last time)

The XML description (``<dv><node name="outInfo"><node name="<stream id>">``) names each stream's
``typeIdentifier`` (``EVTS`` events, ``FRME`` frames, ``IMUS``, ``TRIG`` ...) and, for events,
the sensor size in its ``info`` node (``sizeX``, ``sizeY``).  An ``EVTS`` packet is an
``EventPacket`` table holding one vector of 16-byte ``Event`` structs
``{int64 t (µs); int16 x; int16 y; bool on; 3 padding bytes}``.

Only events are returned: by default the **first** ``EVTS`` stream in the description's order
(``stream_id=`` picks another); packets of every other stream are skipped by their stream id
without being decompressed.  FlatBuffers are parsed by hand (numpy + ``struct``), with every
offset checked against its buffer.  Compressed files (LZ4 frames or Zstd frames, one per packet)
need the optional ``lz4`` / ``zstandard`` packages, imported only when a file needs them.

Timestamps are kept as stored: DV records Unix-epoch microseconds.  As the other readers of this
package do, events stored out of time order are stably sorted by t (DV itself never writes them);
negative timestamps, coordinates outside the declared sensor, polarity bytes other than 0/1 and
every structural problem raise :class:`EventFormatError` naming the file, what was expected and
what was found.  Decoding is vectorised per packet (``np.frombuffer`` on the struct vector) and the
output is built with one concatenation.
"""

from __future__ import annotations

import os
import struct
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from event_lightning.events.core import EVENT_DTYPE, EventFormatError, SensorSize, validate

__all__ = [
    "AEDAT4_COMPRESSIONS",
    "AEDAT4_EVENT_RECORD",
    "AEDAT4_MAGIC",
    "Aedat4Header",
    "Aedat4Packet",
    "Aedat4Stream",
    "encode_aedat4_header",
    "encode_aedat4_packet",
    "read_aedat4",
    "read_aedat4_header",
    "read_aedat4_with_sensor",
    "write_aedat4",
]

AEDAT4_MAGIC = b"#!AER-DAT4.0\r\n"
# IOHeader's Compression enum, in enum order (DV: NONE, LZ4, LZ4_HIGH, ZSTD, ZSTD_HIGH).
AEDAT4_COMPRESSIONS = ("none", "lz4", "lz4_high", "zstd", "zstd_high")
# The FlatBuffers struct ``Event {int64 t; int16 x; int16 y; bool on;}``: 13 bytes padded to 16.
AEDAT4_EVENT_RECORD = np.dtype(
    {
        "names": ["t", "x", "y", "on"],
        "formats": ["<i8", "<i2", "<i2", "u1"],
        "offsets": [0, 8, 10, 12],
        "itemsize": 16,
    }
)
_PACKET_HEADER = struct.Struct("<iI")
_DATA_TABLE_ID = b"FTAB"
_EVENTS_ID = "EVTS"
_PIP_NAMES = {"lz4": "lz4", "zstd": "zstandard"}
_MAX_SENSOR_SIDE = int(np.iinfo(np.int16).max) + 1
_COMPRESSION_LEVELS = {"lz4": 0, "lz4_high": 9, "zstd": 3, "zstd_high": 19}


@dataclass(frozen=True)
class Aedat4Stream:
    """One output stream of the XML description: its id, type identifier and frame/event geometry."""

    stream_id: int
    type_identifier: str
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class Aedat4Packet:
    """Where one packet lies: byte offset of its 8-byte header, stream id and payload size (bytes)."""

    offset: int
    stream_id: int
    size: int


@dataclass(frozen=True)
class Aedat4Header:
    """The parsed IOHeader and packet index of a file.

    ``data_table_position`` is -1 when the file has no data table (packets then run to the end).
    ``packets`` lists every packet header found between the IOHeader and the data table.
    """

    compression: str
    data_table_position: int
    description: str
    streams: tuple[Aedat4Stream, ...]
    packets: tuple[Aedat4Packet, ...]

    def event_stream(self, stream_id: int | None = None, *, origin: str | Path = "AEDAT4 file") -> Aedat4Stream:
        """The first ``EVTS`` stream (or the one with ``stream_id``); raises if there is none."""
        for stream in self.streams:
            if stream.type_identifier == _EVENTS_ID and stream_id in (None, stream.stream_id):
                return stream
        found = [f"{s.stream_id}:{s.type_identifier}" for s in self.streams]
        wanted = "an event stream" if stream_id is None else f"event stream {stream_id}"
        raise EventFormatError(
            f"{origin}: expected {wanted} (typeIdentifier {_EVENTS_ID}) in the XML outInfo node; found streams {found}"
        )


# ----------------------------------------------------------------------------------- FlatBuffer parsing


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


# -------------------------------------------------------------------------------------------- reading


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise EventFormatError(f"{path}: cannot read the AEDAT4 file: {error}") from error


def _parse_description(xml: str, origin: str | Path) -> tuple[Aedat4Stream, ...]:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as error:
        raise EventFormatError(f"{origin}: expected an XML stream description in the IOHeader; {error}") from error
    if root.tag != "dv":
        raise EventFormatError(f"{origin}: expected the XML description's root element <dv>, found <{root.tag}>")
    out_info = next((n for n in root.findall("node") if n.get("name") == "outInfo"), None)
    if out_info is None:
        found = [n.get("name") for n in root.findall("node")]
        raise EventFormatError(
            f"{origin}: expected a <node name='outInfo'> in the XML description, found nodes {found}"
        )
    streams = []
    for node in out_info.findall("node"):
        name = node.get("name", "")
        if not (name.isascii() and name.isdigit()):
            raise EventFormatError(f"{origin}: expected outInfo stream nodes named by integer ids, found {name!r}")
        attrs = {a.get("key"): (a.text or "").strip() for a in node.findall("attr")}
        identifier = attrs.get("typeIdentifier")
        if not identifier:
            raise EventFormatError(
                f"{origin}: expected a typeIdentifier attribute in outInfo stream {name}, found none"
            )
        width = height = None
        if identifier == _EVENTS_ID:
            info = next((n for n in node.findall("node") if n.get("name") == "info"), None)
            sizes = {} if info is None else {a.get("key"): (a.text or "").strip() for a in info.findall("attr")}
            for key in ("sizeX", "sizeY"):
                value = sizes.get(key, "")
                if not (value.isascii() and value.isdigit()) or not 0 < int(value) <= _MAX_SENSOR_SIDE:
                    raise EventFormatError(
                        f"{origin}: event stream {name}: expected a positive integer {key} (<= 32768) in its "
                        f"info node, found {value or 'none'!r}"
                    )
            width, height = int(sizes["sizeX"]), int(sizes["sizeY"])
        if any(s.stream_id == int(name) for s in streams):
            raise EventFormatError(f"{origin}: expected unique stream ids in outInfo, found id {name} twice")
        streams.append(Aedat4Stream(int(name), identifier, width, height))
    if not streams:
        raise EventFormatError(f"{origin}: expected at least one stream in the XML outInfo node, found none")
    return tuple(streams)


def _parse_header(data: bytes, origin: str | Path) -> Aedat4Header:
    magic = data[: len(AEDAT4_MAGIC)]
    if magic != AEDAT4_MAGIC:
        raise EventFormatError(f"{origin}: expected the AEDAT4 magic {AEDAT4_MAGIC!r} at byte 0, found {magic!r}")
    start = len(AEDAT4_MAGIC)
    if len(data) < start + 4:
        raise EventFormatError(
            f"{origin}: expected a 4-byte IOHeader size after the magic, found {len(data) - start} "
            "byte(s): the file is truncated"
        )
    size = struct.unpack_from("<I", data, start)[0]
    packets_start = start + 4 + size
    if packets_start > len(data):
        raise EventFormatError(
            f"{origin}: expected a {size}-byte IOHeader at byte {start + 4}, found only "
            f"{len(data) - start - 4} byte(s): the file is truncated"
        )
    buffer = _FlatBuffer(memoryview(data)[start + 4 : packets_start], origin, "IOHeader")
    table = buffer.root(None)
    code = buffer.scalar(table, 0, "<i", 0, "the compression")
    if not 0 <= code < len(AEDAT4_COMPRESSIONS):
        raise EventFormatError(
            f"{origin}: expected an IOHeader compression in 0..{len(AEDAT4_COMPRESSIONS) - 1} "
            f"{AEDAT4_COMPRESSIONS}, found {code}"
        )
    table_position = buffer.scalar(table, 1, "<q", -1, "the data table position")
    text_pos = buffer.reference(table, 2, "the description offset")
    if text_pos is None:
        raise EventFormatError(f"{origin}: expected an XML description in the IOHeader, found none")
    text_start, text_length = buffer.vector(text_pos, 1, "the description")
    try:
        description = bytes(buffer.data[text_start : text_start + text_length]).decode("utf-8")
    except UnicodeDecodeError as error:
        raise EventFormatError(f"{origin}: expected a UTF-8 XML description in the IOHeader; {error}") from error
    if table_position != -1 and not packets_start <= table_position <= len(data):
        raise EventFormatError(
            f"{origin}: expected the data table position -1 or in [{packets_start}, {len(data)}] (the file's "
            f"size), found {table_position}: the file is truncated or the header is corrupt"
        )
    streams = _parse_description(description, origin)
    packets = _index_packets(
        data, packets_start, len(data) if table_position == -1 else table_position, streams, origin
    )
    return Aedat4Header(AEDAT4_COMPRESSIONS[code], table_position, description, streams, packets)


def _index_packets(
    data: bytes, start: int, end: int, streams: tuple[Aedat4Stream, ...], origin: str | Path
) -> tuple[Aedat4Packet, ...]:
    """Walk the packet headers from ``start`` to ``end`` (one Python step per packet, not per event)."""
    known = {s.stream_id for s in streams}
    packets = []
    limit = "the data table" if end < len(data) else "the end of the file"
    pos = start
    while pos < end:
        if pos + _PACKET_HEADER.size > end:
            raise EventFormatError(
                f"{origin}: expected an 8-byte packet header at byte {pos}, found {end - pos} byte(s) before "
                f"{limit}: the file is truncated"
            )
        stream_id, size = _PACKET_HEADER.unpack_from(data, pos)
        if stream_id not in known:
            raise EventFormatError(
                f"{origin}: packet at byte {pos}: expected a stream id declared in the description "
                f"{sorted(known)}, found {stream_id}"
            )
        if pos + _PACKET_HEADER.size + size > end:
            raise EventFormatError(
                f"{origin}: packet at byte {pos}: expected {size} payload byte(s), found "
                f"{end - pos - _PACKET_HEADER.size} before {limit}: the file is truncated or the packet "
                "size is corrupt"
            )
        packets.append(Aedat4Packet(pos, stream_id, size))
        pos += _PACKET_HEADER.size + size
    return tuple(packets)


def _decompress(payload: memoryview, compression: str, origin: str | Path, where: str) -> bytes | memoryview:
    """Undo one packet's compression; truncated, corrupt or over-long frames raise."""
    if compression == "none":
        return payload
    family = compression.split("_")[0]
    try:
        if family == "lz4":
            import lz4.frame as codec
        else:
            import zstandard as codec
    except ImportError as error:
        raise ImportError(
            f"{origin}: the file is {compression}-compressed; install the {_PIP_NAMES[family]!r} package "
            f"(pip install {_PIP_NAMES[family]}) to read it"
        ) from error
    try:
        decoder = codec.LZ4FrameDecompressor() if family == "lz4" else codec.ZstdDecompressor().decompressobj()
        output = decoder.decompress(payload)
    except Exception as error:  # noqa: BLE001 - both codecs raise their own error classes on corrupt frames
        raise EventFormatError(
            f"{origin}: {where}: expected a valid {family} frame; decompression failed: {error}"
        ) from error
    if not decoder.eof:
        raise EventFormatError(f"{origin}: {where}: expected a complete {family} frame, found a truncated one")
    if decoder.unused_data:
        raise EventFormatError(
            f"{origin}: {where}: expected one {family} frame, found {len(decoder.unused_data)} trailing byte(s)"
        )
    return output


def _decode_event_packet(buffer: bytes | memoryview, origin: str | Path, where: str) -> np.ndarray:
    """The ``[N]`` :data:`AEDAT4_EVENT_RECORD` records of one decompressed ``EVTS`` packet."""
    flat = _size_prefixed(buffer, origin, where)
    table = flat.root(_EVENTS_ID.encode())
    elements = flat.reference(table, 0, "the elements offset")
    if elements is None:
        return np.zeros(0, dtype=AEDAT4_EVENT_RECORD)
    start, count = flat.vector(elements, AEDAT4_EVENT_RECORD.itemsize, "the event vector")
    return np.frombuffer(flat.data, dtype=AEDAT4_EVENT_RECORD, count=count, offset=start)


def _check_data_table(data: bytes, header: Aedat4Header, origin: str | Path) -> None:
    """The data table, when present, must list exactly the packets found (offset, stream id, size).

    It is the only record of where the packets end, so checking it turns a file cut at a packet
    boundary (otherwise a valid-looking shorter recording) into an error.
    """
    if header.data_table_position == -1:
        return
    where = f"data table at byte {header.data_table_position}"
    buffer = _decompress(memoryview(data)[header.data_table_position :], header.compression, origin, where)
    flat = _size_prefixed(buffer, origin, where)
    table = flat.root(_DATA_TABLE_ID)
    vector = flat.reference(table, 0, "the table offset")
    start, count = (0, 0) if vector is None else flat.vector(vector, 4, "the packet definitions")
    if count != len(header.packets):
        raise EventFormatError(
            f"{origin}: {where}: expected it to list the {len(header.packets)} packet(s) found, found {count} entries"
        )
    entries = []
    for i in range(count):
        entry = start + 4 * i + flat.unpack("<I", start + 4 * i, f"definition {i}'s offset")
        info = flat.field(entry, 1, 8)
        stream_id, size = (0, 0) if info is None else struct.unpack_from("<ii", flat.data, info)
        entries.append((flat.scalar(entry, 0, "<q", 0, "a byte offset"), stream_id, size))
    # Byte offsets point at packet payloads (DV's writer); compared in file order.
    for i, ((offset, stream_id, size), packet) in enumerate(zip(sorted(entries), header.packets, strict=True)):
        if (offset, stream_id, size) != (packet.offset + _PACKET_HEADER.size, packet.stream_id, packet.size):
            raise EventFormatError(
                f"{origin}: {where}: expected entry {i} to describe the packet with its payload at byte "
                f"{packet.offset + _PACKET_HEADER.size} (stream {packet.stream_id}, {packet.size} bytes), "
                f"found byte {offset} (stream {stream_id}, {size} bytes)"
            )


def read_aedat4_header(path: str | os.PathLike) -> Aedat4Header:
    """Parse the magic, the IOHeader (compression, data-table position, XML streams) and the packet index."""
    path = Path(path)
    return _parse_header(_read_bytes(path), path)


def read_aedat4_with_sensor(path: str | os.PathLike, *, stream_id: int | None = None) -> tuple[np.ndarray, SensorSize]:
    """Read one event stream of an AEDAT4 file and the sensor size its XML description declares.

    Args:
        path: the ``.aedat4`` file.
        stream_id: the ``EVTS`` stream to read; default the first one in the description.

    Returns:
        ``(events [N], SensorSize(sizeX, sizeY, 2))``: x, y in pixels, t in µs as stored
        (DV: Unix epoch), p = 1 for ON events, sorted by t.
    """
    path = Path(path)
    data = _read_bytes(path)
    header = _parse_header(data, path)
    stream = header.event_stream(stream_id, origin=path)
    sensor = SensorSize(int(stream.width), int(stream.height), 2)
    _check_data_table(data, header, path)
    records = []
    view = memoryview(data)  # packet slices without copies
    for packet in header.packets:
        if packet.stream_id != stream.stream_id:
            continue
        where = f"event packet at byte {packet.offset}"
        begin = packet.offset + _PACKET_HEADER.size
        buffer = _decompress(view[begin : begin + packet.size], header.compression, path, where)
        records.append(_decode_event_packet(buffer, path, where))
    merged = np.concatenate(records) if records else np.zeros(0, dtype=AEDAT4_EVENT_RECORD)
    bad = merged["on"] > 1
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise EventFormatError(
            f"{path}: expected event polarity bytes 0 or 1 (FlatBuffers bool), found "
            f"{int(merged['on'][i])} at event {i}"
        )
    t = np.ascontiguousarray(merged["t"])  # one strided gather; the order check then runs on contiguous memory
    events = np.empty(len(merged), dtype=EVENT_DTYPE)
    events["x"], events["y"], events["t"], events["p"] = merged["x"], merged["y"], t, merged["on"]
    if len(t) > 1 and (t[1:] < t[:-1]).any():
        events = events[np.argsort(t, kind="stable")]
    return validate(events, sensor, origin=path), sensor


def read_aedat4(path: str | os.PathLike, *, stream_id: int | None = None) -> np.ndarray:
    """Events ``[N]`` (:data:`EVENT_DTYPE`, t in µs) of the first (or ``stream_id``) event stream.

    See :func:`read_aedat4_with_sensor` for the sensor size as well.
    """
    return read_aedat4_with_sensor(path, stream_id=stream_id)[0]


# -------------------------------------------------------------------------------------------- writing


def _pad(data: bytearray, multiple: int) -> None:
    data.extend(b"\0" * (-len(data) % multiple))


def _compress(buffer: bytes, compression: str) -> bytes:
    if compression == "none":
        return buffer
    family = compression.split("_")[0]
    try:
        if family == "lz4":
            import lz4.frame as codec
        else:
            import zstandard as codec
    except ImportError as error:
        raise ImportError(
            f"writing {compression}-compressed AEDAT4 needs the {_PIP_NAMES[family]!r} package "
            f"(pip install {_PIP_NAMES[family]})"
        ) from error
    level = _COMPRESSION_LEVELS[compression]
    # Checksums make a corrupted packet an error instead of silently different events.
    if family == "lz4":
        return codec.compress(buffer, compression_level=level, content_checksum=True)
    return codec.ZstdCompressor(level=level, write_checksum=True).compress(buffer)


def _check_compression(compression: str) -> str:
    if compression not in AEDAT4_COMPRESSIONS:
        raise ValueError(f"AEDAT4 compression must be one of {AEDAT4_COMPRESSIONS}, found {compression!r}")
    return compression


def _xml_description(streams: Sequence[Aedat4Stream], compression: str) -> str:
    nodes = []
    for s in streams:
        info = ""
        if s.width is not None and s.height is not None:
            info = (
                f'<node name="info" path="/mainloop/event_lightning/outInfo/{s.stream_id}/info/">'
                f'<attr key="sizeX" type="int">{int(s.width)}</attr>'
                f'<attr key="sizeY" type="int">{int(s.height)}</attr>'
                '<attr key="source" type="string">event_lightning</attr></node>'
            )
        nodes.append(
            f'<node name="{int(s.stream_id)}" path="/mainloop/event_lightning/outInfo/{s.stream_id}/">'
            f'<attr key="compression" type="string">{compression.upper()}</attr>'
            f'<attr key="typeIdentifier" type="string">{s.type_identifier}</attr>{info}</node>'
        )
    return (
        '<dv version="2.0"><node name="outInfo" path="/mainloop/event_lightning/outInfo/">'
        + "".join(nodes)
        + "</node></dv>"
    )


def encode_aedat4_header(
    streams: Sequence[Aedat4Stream], compression: str = "none", data_table_position: int = -1
) -> bytes:
    """The magic plus the size-prefixed ``IOHE`` IOHeader FlatBuffer describing ``streams``.

    Every field is written explicitly (no default elision), so the header size does not depend on
    the data-table position and can be written before the position is known.
    """
    code = AEDAT4_COMPRESSIONS.index(_check_compression(compression))
    text = _xml_description(streams, compression).encode("utf-8")
    # Offsets are relative to the buffer after the size prefix; as in a FlatBuffers builder's
    # size-prefixed output, alignment counts from the prefix: the int64 field sits 8-aligned there.
    buffer = bytearray(struct.pack("<I4s", 0, b"IOHE"))
    vtable = len(buffer)
    buffer += struct.pack("<5H", 10, 20, 4, 8, 16)
    _pad(buffer, 4)
    table = len(buffer)
    string = table + 20
    buffer += struct.pack("<iiqI", table - vtable, code, data_table_position, string - (table + 16))
    buffer += struct.pack("<I", len(text)) + text + b"\0"
    _pad(buffer, 4)
    struct.pack_into("<I", buffer, 0, table)
    return AEDAT4_MAGIC + struct.pack("<I", len(buffer)) + bytes(buffer)


def _struct_vector_buffer(identifier: bytes, elements: bytes, count: int) -> bytes:
    """A size-prefixed table ``{elements: [struct]}`` with 8-aligned elements (16-byte structs)."""
    # Layout after the prefix: root, identifier, vtable (6 bytes + 2 pad), table (8), vector length.
    buffer = bytearray(struct.pack("<I4s3H2x", 16, identifier, 6, 8, 4))
    buffer += struct.pack("<iII", 16 - 8, 24 - 20, count) + elements
    return struct.pack("<I", len(buffer)) + bytes(buffer)


def encode_aedat4_packet(stream_id: int, identifier: str, elements: np.ndarray, compression: str = "none") -> bytes:
    """One packet: ``int32 stream id, int32 size`` and the compressed size-prefixed FlatBuffer.

    ``elements`` is a structured array of 16-byte FlatBuffers structs (:data:`AEDAT4_EVENT_RECORD`
    for ``EVTS``), stored as the packet table's one vector; an empty array with another identifier
    gives e.g. a valid empty ``TRIG`` packet.  No check is made on the values: the tests use this
    to write deliberately broken files.
    """
    if elements.dtype.itemsize != 16:
        raise ValueError(f"AEDAT4 packet elements must be 16-byte structs, found itemsize {elements.dtype.itemsize}")
    body = _compress(
        _struct_vector_buffer(identifier.encode("ascii"), elements.tobytes(), len(elements)),
        _check_compression(compression),
    )
    return _PACKET_HEADER.pack(stream_id, len(body)) + body


def _encode_data_table(rows: Sequence[tuple[int, int, int, int, int, int]], compression: str) -> bytes:
    """The compressed size-prefixed ``FTAB`` buffer; rows are (offset, stream, size, count, t0, t1)."""
    n = len(rows)
    # root (0), identifier (4), vtable (8..14), root table (16..24), vector (24..), shared vtable, tables.
    buffer = bytearray(struct.pack("<I4s3H2xiII", 16, _DATA_TABLE_ID, 6, 8, 4, 8, 4, n))
    vector = len(buffer)
    buffer += b"\0" * (4 * n)
    vtable = len(buffer)
    buffer += struct.pack("<7H", 14, 44, 4, 12, 20, 28, 36)
    _pad(buffer, 8)  # tables start 4 mod 8 counted from the size prefix, so their int64s are 8-aligned
    for i, (offset, stream_id, size, count, t_start, t_end) in enumerate(rows):
        table = len(buffer)
        struct.pack_into("<I", buffer, vector + 4 * i, table - (vector + 4 * i))
        buffer += struct.pack("<iqiiqqq4x", table - vtable, offset, stream_id, size, count, t_start, t_end)
    buffer += b"\0" * 4  # the buffer with its prefix is then a multiple of 8 bytes, as a builder's is
    return _compress(struct.pack("<I", len(buffer)) + bytes(buffer), compression)


def write_aedat4(
    path: str | os.PathLike,
    events: np.ndarray,
    sensor_size: SensorSize,
    compression: str = "none",
    *,
    events_per_packet: int = 8192,
    stream_id: int = 0,
) -> Path:
    """Write ``events`` (:data:`EVENT_DTYPE`, sorted by t, µs) as an AEDAT 4.0 file with one event stream.

    The file holds the IOHeader (with ``compression``: "none", "lz4", "lz4_high", "zstd" or
    "zstd_high"; compressed frames carry content checksums), one ``EVTS`` packet per
    ``events_per_packet`` events and DV's file data table (byte offsets of the packet payloads).
    Events are validated against ``sensor_size`` (at most 2 polarities: AEDAT4 stores a bool).
    Parent folders are created and the file is renamed into place, so no partial file is left
    under ``path``.  Returns the written path.
    """
    path = Path(path)
    compression = _check_compression(compression)
    if sensor_size.polarities > 2 or max(sensor_size.width, sensor_size.height) > _MAX_SENSOR_SIDE:
        raise ValueError(f"{path}: AEDAT4 stores int16 coordinates and a bool polarity; found {sensor_size}")
    validate(events, sensor_size, origin=path)
    if events_per_packet <= 0:
        raise ValueError(f"{path}: events_per_packet must be positive, found {events_per_packet}")
    records = np.zeros(len(events), dtype=AEDAT4_EVENT_RECORD)
    for name, field in (("t", "t"), ("x", "x"), ("y", "y"), ("on", "p")):
        records[name] = events[field]
    streams = [Aedat4Stream(stream_id, _EVENTS_ID, sensor_size.width, sensor_size.height)]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    rows = []
    try:
        with tmp.open("wb") as f:
            # The header's size does not depend on the table position: written now, rewritten at the end.
            offset = f.write(encode_aedat4_header(streams, compression))
            for begin in range(0, len(records), events_per_packet):
                chunk = records[begin : begin + events_per_packet]
                packet = encode_aedat4_packet(stream_id, _EVENTS_ID, chunk, compression)
                # As DV's writer does, the table's byte offset points at the payload, past the header.
                payload, size = offset + _PACKET_HEADER.size, len(packet) - _PACKET_HEADER.size
                rows.append((payload, stream_id, size, len(chunk), int(chunk["t"][0]), int(chunk["t"][-1])))
                offset += f.write(packet)
            f.write(_encode_data_table(rows, compression))
            f.seek(0)
            f.write(encode_aedat4_header(streams, compression, data_table_position=offset))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
