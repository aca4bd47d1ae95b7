"""Reading a hostile file under a memory cap: the ``bounded_read`` fixture of the reader fuzz tests."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from event_lightning.events.core import EventFormatError

MEMORY_CAP_BYTES = 64 << 20
"""What any read may allocate on top of :data:`MEMORY_CAP_PER_FILE_BYTE` times the file size."""
MEMORY_CAP_PER_FILE_BYTE = 10


class BoundedRead:
    """``bounded_read(read, path, error)``: run ``read(path)`` with tracemalloc's peak reset first.

    Asserts that the peak of traced allocations stays within ``64 MiB + 10 x the file size`` (numpy,
    h5py's reads into numpy, zlib / zstd / lz4 outputs and scipy are all traced), and that an
    exception is an ``error`` (the reader's documented format error) whose message names the
    file. Returns ``("error", exception)`` or ``("valid", result)``.
    """

    def __call__(
        self, read: Callable[[Path], object], path: Path, error: type[Exception] = EventFormatError
    ) -> tuple[str, object]:
        cap = MEMORY_CAP_BYTES + MEMORY_CAP_PER_FILE_BYTE * path.stat().st_size
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        try:
            outcome: tuple[str, object] = ("valid", read(path))
        except Exception as failure:  # noqa: BLE001 - the type is what is checked
            outcome = ("error", failure)
        peak = tracemalloc.get_traced_memory()[1] - before
        assert peak <= cap, f"{path.name}: reading allocated {peak / 2**20:.1f} MiB, over the {cap / 2**20:.1f} MiB cap"
        if outcome[0] == "error":
            failure = outcome[1]
            assert isinstance(failure, error), (
                f"{path.name}: raised {type(failure).__name__}, not {error.__name__}: {failure}"
            )
            assert path.name in str(failure), f"{type(failure).__name__} does not name {path.name}: {failure}"
        return outcome


@pytest.fixture
def bounded_read() -> Iterator[BoundedRead]:
    tracemalloc.start()
    try:
        yield BoundedRead()
    finally:
        tracemalloc.stop()
