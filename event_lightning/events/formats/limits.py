"""How much a file may make a reader allocate: declared sizes are checked before anything is allocated.

A header can claim any size: a 200-byte ``.npy`` may declare 10**9 rows, a 97 KB zstd packet may
inflate to gigabytes, an HDF5 dataset may declare 3e9 elements it never stored. Every reader of
:mod:`event_lightning.events.formats` compares what a file declares with what the file can hold
before allocating it:

* uncompressed data: exactly the bytes that follow the header (more is truncation, less is
  trailing garbage);
* compressed data: at most :data:`MAX_EXPANSION` decompressed bytes per stored byte, plus
  :data:`MIN_BUDGET_BYTES` (event data compresses 3-10x with zlib, zstd or lz4; DEFLATE's own
  ceiling is about 1032x, which is what a bomb uses), and decompression is streamed with that cap.

A file that breaks a limit raises the reader's format error naming the file and the field, so a
hostile or corrupt file costs bounded memory and time and is counted by ``on_bad_sample: skip``
like any other bad file.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

import numpy as np

from event_lightning.events.core import EventFormatError

__all__ = [
    "MAX_EXPANSION",
    "MIN_BUDGET_BYTES",
    "READ_CHUNK_BYTES",
    "check_declared_bytes",
    "expansion_budget",
    "read_exact",
]

MAX_EXPANSION = 100
"""Decompressed bytes a compressed byte may turn into (10x more than event data needs)."""

MIN_BUDGET_BYTES = 1 << 20
"""Allowed on top of the ratio, so that tiny files with fixed-size headers are never refused."""

READ_CHUNK_BYTES = 1 << 22
"""Streams are read this many bytes at a time."""


def expansion_budget(stored_bytes: int) -> int:
    """The most bytes ``stored_bytes`` of compressed data may decompress to."""
    return MIN_BUDGET_BYTES + MAX_EXPANSION * max(int(stored_bytes), 0)


def check_declared_bytes(
    declared: int,
    budget: int,
    origin: str | Path,
    what: str,
    error: type[Exception] = EventFormatError,
) -> int:
    """Return ``declared`` if it is within ``budget``, else raise ``error`` naming ``origin`` and ``what``."""
    if declared > budget:
        raise error(
            f"{origin}: {what} declares {declared} bytes, more than the {budget} bytes the file can hold "
            f"(its stored size, or at most {MAX_EXPANSION}x it when compressed); the header is corrupt or "
            "the file was crafted: re-copy or regenerate it"
        )
    return declared


def read_exact(stream: IO[bytes], nbytes: int, origin: str, error: type[Exception]) -> np.ndarray:
    """Exactly ``nbytes`` from ``stream`` as uint8 ``[nbytes]``, read in chunks into one buffer (so a
    stream never costs more than what was declared and checked); a short stream raises ``error``."""
    out = np.empty(nbytes, dtype=np.uint8)
    filled = 0
    while filled < nbytes:
        chunk = stream.read(min(READ_CHUNK_BYTES, nbytes - filled))
        if not chunk:
            raise error(
                f"{origin}: the data end after {filled} of the {nbytes} bytes its header declares: the file is "
                "truncated; re-copy or regenerate it"
            )
        out[filled : filled + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
        filled += len(chunk)
    return out
