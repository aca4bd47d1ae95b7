"""Per-packet compression of AEDAT4 files: LZ4 or Zstd frames, one per packet and for the data table.

The optional ``lz4`` / ``zstandard`` packages are imported only when a file needs them; a missing
one raises an ImportError naming the ``pip install`` command.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from event_lightning.events.core import EventFormatError
from event_lightning.events.formats.aedat4.layout import AEDAT4_COMPRESSIONS
from event_lightning.events.formats.limits import check_declared_bytes

_PIP_NAMES = {"lz4": "lz4", "zstd": "zstandard"}
_COMPRESSION_LEVELS = {"lz4": 0, "lz4_high": 9, "zstd": 3, "zstd_high": 19}
_LZ4_CHUNK = 1 << 20


def _codec(family: str, need: str, purpose: str = "") -> ModuleType:
    """``lz4.frame`` or ``zstandard``, imported only when a file needs it.

    When it is missing: ImportError "<need> the '<package>' package (pip install <package>)<purpose>".
    """
    try:
        if family == "lz4":
            import lz4.frame as codec
        else:
            import zstandard as codec
    except ImportError as error:
        package = _PIP_NAMES[family]
        raise ImportError(f"{need} the {package!r} package (pip install {package}){purpose}") from error
    return codec


def _decompress(
    payload: memoryview, compression: str, origin: str | Path, where: str, limit: int
) -> bytes | memoryview:
    """Undo one packet's compression, producing at most ``limit`` bytes (the file's remaining
    decompression budget); truncated, corrupt, over-long or over-budget frames raise."""
    if compression == "none":
        return payload
    family = compression.split("_")[0]
    codec = _codec(family, f"{origin}: the file is {compression}-compressed; install", " to read it")
    expected = f"{where}: expected one complete {family} frame of at most {limit} bytes (the file's budget)"
    try:
        if family == "lz4":
            output, complete, trailing = _lz4_frame(codec, payload, limit, origin, where)
        else:
            declared = codec.get_frame_parameters(payload).content_size
            if declared != codec.CONTENTSIZE_UNKNOWN:
                check_declared_bytes(declared, limit, origin, f"{where}: the zstd frame")
            # One frame, at most ``limit`` bytes: truncation, excess and trailing bytes raise.
            output = codec.ZstdDecompressor().decompress(payload, max_output_size=limit, allow_extra_data=False)
            complete, trailing = True, 0
    except EventFormatError:
        raise
    except Exception as error:  # noqa: BLE001 - both codecs raise their own error classes on corrupt frames
        raise EventFormatError(f"{origin}: {expected}; decompression failed: {error}") from error
    if not complete:
        raise EventFormatError(f"{origin}: {where}: expected a complete {family} frame, found a truncated one")
    if trailing:
        raise EventFormatError(f"{origin}: {where}: expected one {family} frame, found {trailing} trailing byte(s)")
    return output


def _lz4_frame(codec: ModuleType, payload: memoryview, limit: int, origin: str | Path, where: str) -> tuple:
    """``(output, complete, trailing bytes)`` of one LZ4 frame, inflated a chunk at a time: the
    binding allocates twice the output it is allowed, so it is never allowed more than a chunk."""
    declared = codec.get_frame_info(payload)["content_size"]  # 0: not declared
    check_declared_bytes(declared, limit, origin, f"{where}: the lz4 frame")
    decoder, pieces, size, data = codec.LZ4FrameDecompressor(), [], 0, payload
    while size <= limit and not decoder.eof:
        piece = decoder.decompress(data, max_length=_LZ4_CHUNK)
        data = b""
        pieces.append(piece)
        size += len(piece)
        if not piece and decoder.needs_input:
            break  # the frame ends early
    if size > limit:  # refused before the pieces are joined
        raise EventFormatError(
            f"{origin}: {where}: expected one lz4 frame of at most {limit} bytes (the file's budget); it inflates "
            "to more: the file is corrupt or crafted"
        )
    return b"".join(pieces), decoder.eof, len(decoder.unused_data or b"")


def _compress(buffer: bytes, compression: str) -> bytes:
    if compression == "none":
        return buffer
    family = compression.split("_")[0]
    codec = _codec(family, f"writing {compression}-compressed AEDAT4 needs")
    level = _COMPRESSION_LEVELS[compression]
    # Checksums make a corrupted packet an error instead of silently different events.
    if family == "lz4":
        return codec.compress(buffer, compression_level=level, content_checksum=True)
    return codec.ZstdCompressor(level=level, write_checksum=True).compress(buffer)


def _check_compression(compression: str) -> str:
    if compression not in AEDAT4_COMPRESSIONS:
        raise ValueError(f"AEDAT4 compression must be one of {AEDAT4_COMPRESSIONS}, found {compression!r}")
    return compression
