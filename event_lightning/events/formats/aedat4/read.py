"""Reading AEDAT4 files: the IOHeader, the XML stream description, the packet index and one event stream.

Packets of other streams are skipped by their stream id without being decompressed; the data
table, when present, must list exactly the packets found.
"""

from __future__ import annotations

import os
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from event_lightning.events.core import EVENT_DTYPE, EventFormatError, SensorSize, validate
from event_lightning.events.formats.aedat4.compression import _decompress
from event_lightning.events.formats.aedat4.flatbuffers import _FlatBuffer, _size_prefixed
from event_lightning.events.formats.aedat4.header import Aedat4Header, Aedat4Packet, Aedat4Stream
from event_lightning.events.formats.aedat4.layout import (
    _DATA_TABLE_ID,
    _EVENTS_ID,
    _MAX_SENSOR_SIDE,
    _PACKET_HEADER,
    AEDAT4_COMPRESSIONS,
    AEDAT4_EVENT_RECORD,
    AEDAT4_MAGIC,
)
from event_lightning.events.formats.limits import expansion_budget


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


def _decode_event_packet(buffer: bytes | memoryview, origin: str | Path, where: str) -> np.ndarray:
    """The ``[N]`` :data:`AEDAT4_EVENT_RECORD` records of one decompressed ``EVTS`` packet."""
    flat = _size_prefixed(buffer, origin, where)
    table = flat.root(_EVENTS_ID.encode())
    elements = flat.reference(table, 0, "the elements offset")
    if elements is None:
        return np.zeros(0, dtype=AEDAT4_EVENT_RECORD)
    start, count = flat.vector(elements, AEDAT4_EVENT_RECORD.itemsize, "the event vector")
    return np.frombuffer(flat.data, dtype=AEDAT4_EVENT_RECORD, count=count, offset=start)


def _check_data_table(data: bytes, header: Aedat4Header, origin: str | Path, limit: int) -> int:
    """The data table, when present, must list exactly the packets found (offset, stream id, size).

    It is the only record of where the packets end, so checking it turns a file cut at a packet
    boundary (otherwise a valid-looking shorter recording) into an error. Returns the bytes its
    decompression took (at most ``limit``).
    """
    if header.data_table_position == -1:
        return 0
    where = f"data table at byte {header.data_table_position}"
    table_bytes = memoryview(data)[header.data_table_position :]
    buffer = _decompress(table_bytes, header.compression, origin, where, limit)
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
    return len(buffer) if header.compression != "none" else 0


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
    # Everything decompressed from the file shares one budget, checked before each allocation.
    budget = expansion_budget(len(data))
    budget -= _check_data_table(data, header, path, budget)
    records = []
    view = memoryview(data)  # packet slices without copies
    for packet in header.packets:
        if packet.stream_id != stream.stream_id:
            continue
        where = f"event packet at byte {packet.offset}"
        begin = packet.offset + _PACKET_HEADER.size
        buffer = _decompress(view[begin : begin + packet.size], header.compression, path, where, budget)
        budget -= len(buffer) if header.compression != "none" else 0
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
