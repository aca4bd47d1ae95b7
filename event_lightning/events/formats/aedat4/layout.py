"""What the AEDAT4 reader and writer agree on: the file's constants and the parsed header's dataclasses.

The magic, the compression enum, the 16-byte event record, the packet header and the FlatBuffer
identifiers; :class:`Aedat4Header` with its streams and packets.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from event_lightning.events.core import EventFormatError

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
_MAX_SENSOR_SIDE = int(np.iinfo(np.int16).max) + 1


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
