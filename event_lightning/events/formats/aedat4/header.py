"""The parsed AEDAT4 header: the streams of the XML description and where each packet lies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from event_lightning.events.core import EventFormatError
from event_lightning.events.formats.aedat4.layout import _EVENTS_ID


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
