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

Modules: ``layout`` (the constants reader and writer share), ``header`` (the parsed header's
dataclasses), ``flatbuffers`` (bounds-checked FlatBuffer parsing), ``compression`` (LZ4 / Zstd per
packet), ``read`` and ``write``. The package re-exports their public names.
"""

from event_lightning.events.formats.aedat4.header import Aedat4Header, Aedat4Packet, Aedat4Stream
from event_lightning.events.formats.aedat4.layout import AEDAT4_COMPRESSIONS, AEDAT4_EVENT_RECORD, AEDAT4_MAGIC
from event_lightning.events.formats.aedat4.read import read_aedat4, read_aedat4_header, read_aedat4_with_sensor
from event_lightning.events.formats.aedat4.write import encode_aedat4_header, encode_aedat4_packet, write_aedat4

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
