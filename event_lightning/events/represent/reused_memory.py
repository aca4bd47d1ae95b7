"""Output memory that a later call reuses once the caller has let go of it: :func:`empty_output`.

A fresh output array costs its page faults on first touch: the operating system maps and zeroes every page
(on the 2-core bench machine 39 MB of frames take ~3-5 ms to fault in, more than counting 500k
events into them). glibc's malloc reuses freed memory for blocks up to its largest mmap threshold
(32 MiB on 64-bit Linux); above it, every allocation is a fresh mapping. So the large outputs keep
their memory here after the caller drops them, and the next call of that size writes into it.

A buffer is reusable when nothing refers to it but this module: every numpy view of it (slices,
reshapes, ``torch.from_numpy``, memoryviews) holds a reference to it as its base, so the reference
count says whether any caller can still see it.
"""

from __future__ import annotations

import sys
import threading

import numpy as np

# Below: malloc's heap reuses freed blocks (no page faults on repeated calls). The cap bounds the
# memory that stays mapped after the last call (two buffers): 64 MiB hold 1,000 frames of 2x128x128
# int16, 10 s of 10 ms windows; larger outputs get fresh mappings.
MIN_REUSED_BYTES = 4 * 2**20
MAX_REUSED_BYTES = 64 * 2**20
# The outputs of the latest calls that are kept: two let a caller hold one output while the next
# is computed (double buffering), at most 2 * MAX_REUSED_BYTES kept when both are dropped.
_KEPT = 2
_kept: list[np.ndarray] = []  # uint8 buffers, most recently handed out last
_lock = threading.Lock()


def _count_when_unheld() -> int:
    """``sys.getrefcount`` of a listed buffer that nothing else holds, read the way
    :func:`empty_output` reads it (3 on CPython 3.11: the list, the local name, the argument).
    Measured rather than written down because interpreters differ in which references they count."""
    probe = [np.empty(1, dtype=np.uint8)]
    buffer = probe[0]
    return sys.getrefcount(buffer)


# Without the GIL (free-threaded builds) reference counts are deferred or biased per thread, so the
# count cannot tell that no caller holds a buffer: nothing is reused there.
_REUSE = getattr(sys, "_is_gil_enabled", lambda: True)()
_UNREFERENCED = _count_when_unheld()


def empty_output(size: int, dtype: np.dtype | type) -> np.ndarray:
    """An uninitialised 1-D array of ``size`` elements, in memory a previous output no longer in
    use when one of the same byte length is kept (large outputs only, see the module docstring).

    The caller must write every element; the memory may hold an earlier call's values.
    """
    dtype = np.dtype(dtype)
    n_bytes = size * dtype.itemsize
    if not _REUSE or not MIN_REUSED_BYTES <= n_bytes <= MAX_REUSED_BYTES:
        return np.empty(size, dtype=dtype)
    with _lock:  # the check and the hand-out below must not interleave with another thread's
        for index in range(len(_kept)):
            buffer = _kept[index]
            if buffer.nbytes == n_bytes and sys.getrefcount(buffer) == _UNREFERENCED:
                _kept.append(_kept.pop(index))
                return buffer.view(dtype)
        buffer = np.empty(n_bytes, dtype=np.uint8)
        _kept.append(buffer)
        del _kept[:-_KEPT]
        return buffer.view(dtype)
