"""N-MNIST / N-Caltech101 ATIS ``.bin`` files: one 40-bit big-endian record per event.

Record layout (bytes of one event, most significant bit first)::

    byte 0: x (8 bits)
    byte 1: y (8 bits)
    byte 2: bit 7 = polarity (1 = ON), bits 6..0 = timestamp bits 22..16
    byte 3: timestamp bits 15..8
    byte 4: timestamp bits 7..0          (timestamp in µs, 23 bits)

A record with ``y == 240`` is not an event but a timestamp-overflow marker.  The reference reader
(Orchard's ``eventvision.py``, which tonic's ``read_mnist_file`` reproduces) adds ``2**13`` µs to
every later timestamp per marker and drops the marker; :func:`read_nmnist_bin` decodes markers
exactly that way, so both readers agree on every file.  Released N-MNIST recordings (~300 ms) never
reach ``2**23`` µs (~8.4 s) and contain no markers; because the increment the reference reader
uses does not match the 23-bit field width, :func:`write_nmnist_bin` never writes markers and
refuses timestamps that do not fit 23 bits instead of writing an ambiguous file.

Empty files: a zero-byte recording, or one of overflow markers only, holds no events, which for
N-MNIST only happens when a download or an extraction went wrong, so the reader raises by default
(``allow_empty=True`` returns an empty stream instead).  Decoding is vectorised (``np.frombuffer`` + bit operations).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from event_lightning.events.core import EVENT_DTYPE, EventFormatError, SensorSize, validate

__all__ = [
    "NMNIST_SENSOR_SIZE",
    "NMNIST_MAX_TIMESTAMP_US",
    "NMNIST_OVERFLOW_INCREMENT_US",
    "decode_nmnist_batch",
    "decode_nmnist_bytes",
    "encode_nmnist_bytes",
    "read_nmnist_bin",
    "write_nmnist_bin",
]

NMNIST_SENSOR_SIZE = SensorSize(width=34, height=34, polarities=2)
NMNIST_RECORD_BYTES = 5
NMNIST_MAX_TIMESTAMP_US = 2**23 - 1
NMNIST_OVERFLOW_Y = 240
NMNIST_OVERFLOW_INCREMENT_US = 2**13


def decode_nmnist_bytes(
    data: bytes | bytearray | memoryview | np.ndarray,
    *,
    origin: str | Path = "N-MNIST bytes",
    sensor_size: SensorSize | None = NMNIST_SENSOR_SIZE,
    allow_empty: bool = False,
) -> np.ndarray:
    """Decode the bytes of an ATIS ``.bin`` recording into an :data:`EVENT_DTYPE` array.

    Args:
        data: the raw file content.
        origin: name used in error messages (the file path).
        sensor_size: checked with :func:`validate`; ``None`` skips the coordinate check.
        allow_empty: return an empty stream for zero bytes (or overflow markers only) instead of raising.

    Returns:
        Events ``[N]`` sorted by t (µs); a stable sort is applied if the records are out of order.
    """
    raw = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.astype(np.uint8)
    size = raw.size
    if size == 0:
        if allow_empty:
            return np.zeros(0, dtype=EVENT_DTYPE)
        raise EventFormatError(
            f"{origin}: the file is empty (0 bytes); an N-MNIST recording holds 5-byte events. "
            "Re-extract or re-generate the dataset, or pass allow_empty=True to read it as no events"
        )
    remainder = size % NMNIST_RECORD_BYTES
    if remainder:
        raise EventFormatError(
            f"{origin}: N-MNIST .bin files hold 5-byte events, but the file has {size} bytes = "
            f"{size // NMNIST_RECORD_BYTES} whole events + {remainder} trailing byte(s); the file is "
            "truncated or not an ATIS .bin recording: re-extract or re-generate it"
        )
    records = raw.reshape(-1, NMNIST_RECORD_BYTES).astype(np.int64)
    x, y = records[:, 0], records[:, 1]
    p = records[:, 2] >> 7
    t = ((records[:, 2] & 0x7F) << 16) | (records[:, 3] << 8) | records[:, 4]
    overflow = y == NMNIST_OVERFLOW_Y
    if overflow.any():
        # Every marker shifts all later timestamps (markers included, which are dropped).
        t = t + np.cumsum(overflow) * NMNIST_OVERFLOW_INCREMENT_US
        keep = ~overflow
        x, y, t, p = x[keep], y[keep], t[keep], p[keep]
        if t.size == 0 and not allow_empty:
            raise EventFormatError(
                f"{origin}: expected events, found only {int(overflow.sum())} timestamp-overflow marker(s) "
                f"(y = {NMNIST_OVERFLOW_Y}): the file is not a recording. Re-extract or re-generate the dataset, "
                "or pass allow_empty=True to read it as no events"
            )
    events = np.empty(t.size, dtype=EVENT_DTYPE)
    events["x"], events["y"], events["t"], events["p"] = x, y, t, p
    if t.size > 1 and (np.diff(t) < 0).any():
        events = events[np.argsort(t, kind="stable")]
    if sensor_size is not None:
        validate(events, sensor_size, origin=origin)
    return events


def decode_nmnist_batch(
    chunks: Sequence[bytes],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Decode several ``.bin`` recordings in one vectorised pass (a DataLoader batch).

    Returns ``x, y`` (uint8), ``t`` (µs, int64), ``p`` (int64) ``[N]`` of the recordings
    concatenated, and ``counts [B]`` events per recording: the values :func:`decode_nmnist_bytes`
    gives, without checking them against a sensor. Returns None when a recording needs
    :func:`decode_nmnist_bytes` itself (empty or not whole records: it raises naming the file;
    overflow markers or out-of-order timestamps: it corrects them).
    """
    sizes = np.fromiter(map(len, chunks), dtype=np.int64, count=len(chunks))
    if len(sizes) == 0 or (sizes == 0).any() or (sizes % NMNIST_RECORD_BYTES).any():
        return None
    raw = np.frombuffer(b"".join(chunks), dtype=np.uint8)
    n = raw.size // NMNIST_RECORD_BYTES
    x, y = raw[0::NMNIST_RECORD_BYTES], raw[1::NMNIST_RECORD_BYTES]
    if (y == NMNIST_OVERFLOW_Y).any():
        return None
    # bytes 1..4 of every record read as one big-endian word: y, then polarity | 23-bit time
    word = np.ndarray(n, dtype=">u4", buffer=raw, offset=1, strides=(NMNIST_RECORD_BYTES,)).astype(np.int64)
    t = word & NMNIST_MAX_TIMESTAMP_US
    p = (word >> 23) & 1
    counts = sizes // NMNIST_RECORD_BYTES
    decreasing = t[1:] < t[:-1]
    decreasing[np.cumsum(counts)[:-1] - 1] = False  # a new recording may start earlier
    if decreasing.any():
        return None
    return x, y, t, p, counts


def read_nmnist_bin(
    path: str | os.PathLike,
    *,
    sensor_size: SensorSize | None = NMNIST_SENSOR_SIZE,
    allow_empty: bool = False,
) -> np.ndarray:
    """Read an N-MNIST / N-Caltech101 ``.bin`` file into an :data:`EVENT_DTYPE` array.

    Args:
        path: the ``.bin`` file.
        sensor_size: expected sensor (N-MNIST: 34x34x2); events outside it raise
            :class:`EventFormatError`.  ``None`` skips the check (N-Caltech101 sizes vary).
        allow_empty: return an empty stream for a 0-byte file instead of raising.

    Returns:
        Events ``[N]`` with x, y in pixels, t in µs, p in {0, 1}, sorted by t.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise EventFormatError(f"{path}: cannot read the N-MNIST .bin file: {error}") from error
    return decode_nmnist_bytes(data, origin=path, sensor_size=sensor_size, allow_empty=allow_empty)


def encode_nmnist_bytes(
    events: np.ndarray,
    *,
    origin: str | Path = "events",
    sensor_size: SensorSize | None = NMNIST_SENSOR_SIZE,
    allow_empty: bool = False,
) -> bytes:
    """Encode an :data:`EVENT_DTYPE` array as ATIS ``.bin`` bytes (5 bytes per event).

    Raises :class:`EventFormatError` for events outside ``sensor_size``, coordinates the format
    cannot hold (x > 255, y > 255 or y == 240, the overflow marker), timestamps outside
    ``[0, 2**23)`` µs, unsorted timestamps, and (unless ``allow_empty``) an empty stream.
    """
    if sensor_size is not None:
        validate(events, sensor_size, origin=origin)
    else:
        validate(events, SensorSize(256, 256, 2), origin=origin)
    if events.size == 0 and not allow_empty:
        raise EventFormatError(
            f"{origin}: refusing to write an empty event stream (the reader treats a 0-byte file as "
            "broken); pass allow_empty=True to write one anyway"
        )
    marker = events["y"] == NMNIST_OVERFLOW_Y
    if marker.any():
        i = int(np.flatnonzero(marker)[0])
        raise EventFormatError(
            f"{origin}: y={NMNIST_OVERFLOW_Y} is the ATIS timestamp-overflow marker and cannot be written "
            f"as an event; found {int(marker.sum())} such event(s), first at index {i}"
        )
    t = events["t"]
    if t.size and int(t.max()) > NMNIST_MAX_TIMESTAMP_US:
        i = int(np.flatnonzero(t > NMNIST_MAX_TIMESTAMP_US)[0])
        raise EventFormatError(
            f"{origin}: the N-MNIST .bin format stores 23-bit timestamps (at most "
            f"{NMNIST_MAX_TIMESTAMP_US} µs ≈ 8.4 s); found t={int(t[i])} µs at index {i}. "
            "Shift or split the recording before writing"
        )
    records = np.empty((events.size, NMNIST_RECORD_BYTES), dtype=np.uint8)
    t = t.astype(np.int64)
    records[:, 0] = events["x"]
    records[:, 1] = events["y"]
    records[:, 2] = (events["p"].astype(np.int64) << 7) | ((t >> 16) & 0x7F)
    records[:, 3] = (t >> 8) & 0xFF
    records[:, 4] = t & 0xFF
    return records.tobytes()


def write_nmnist_bin(
    path: str | os.PathLike,
    events: np.ndarray,
    *,
    sensor_size: SensorSize | None = NMNIST_SENSOR_SIZE,
    allow_empty: bool = False,
) -> None:
    """Write ``events`` (:data:`EVENT_DTYPE`, sorted by t, µs) to ``path`` as an ATIS ``.bin``.

    Parent folders are created.  The file is written to a temporary name and renamed, so an
    interrupted write never leaves a truncated recording under the final name.  See
    :func:`encode_nmnist_bytes` for the errors raised.
    """
    path = Path(path)
    data = encode_nmnist_bytes(events, origin=path, sensor_size=sensor_size, allow_empty=allow_empty)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
