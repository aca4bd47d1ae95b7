"""Writing AEDAT4 files: the IOHeader, ``EVTS`` packets and DV's file data table, as FlatBuffers.

:func:`encode_aedat4_header` and :func:`encode_aedat4_packet` are public so that tests can build
deliberately broken files from valid parts.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from event_lightning.events.core import SensorSize, validate
from event_lightning.events.formats.aedat4.compression import _check_compression, _compress
from event_lightning.events.formats.aedat4.header import Aedat4Stream
from event_lightning.events.formats.aedat4.layout import (
    _DATA_TABLE_ID,
    _EVENTS_ID,
    _MAX_SENSOR_SIDE,
    _PACKET_HEADER,
    AEDAT4_COMPRESSIONS,
    AEDAT4_EVENT_RECORD,
    AEDAT4_MAGIC,
)


def _pad(data: bytearray, multiple: int) -> None:
    data.extend(b"\0" * (-len(data) % multiple))


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
