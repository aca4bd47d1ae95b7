"""The constants of the AEDAT4 file layout that the reader and the writer share.

The magic, the IOHeader's compression enum, the 16-byte event record, the packet header, the
FlatBuffer identifiers and the largest sensor side int16 coordinates allow.
"""

from __future__ import annotations

import struct

import numpy as np

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
