"""Keeping freed heap memory in the process during CPU training (glibc on Linux).

glibc returns memory to the kernel when the free space at the top of its heap exceeds a trim
threshold (by default twice its dynamic mmap threshold, which follows the largest block freed,
at most 32 MiB), and maps blocks above the mmap threshold afresh at every allocation. A training
step whose working set swings by tens of MiB, as the pose SNN's (whole windows of ``T * B``
images per layer), then page-faults that memory back in at every step: 6k-28k minor faults
(25-110 MiB) and 10-40 ms of a 0.5 s CPU step on the bench, where the reference's per-bin
tensors fault none. :func:`keep_freed_heap_memory` sets a fixed mmap threshold of 32 MiB and a
trim threshold of 1 GiB once per process, so the heap keeps what a step frees for the next one;
the process then holds up to its peak heap (plus 1 GiB at most) until it exits. Every model of
this package asks for it when a fit starts on the CPU (``CompilableModule.on_fit_start``); HG-VAE's
DECOLLE layers page-faulted 125-455k times per bench step without it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

__all__ = ["keep_freed_heap_memory"]

_M_TRIM_THRESHOLD = -1  # <malloc.h>
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20
"""Blocks above this are still mapped per allocation (glibc's largest dynamic threshold)."""
TRIM_THRESHOLD = 2**30
"""Free heap kept at the top before glibc returns any to the kernel."""


@functools.cache
def keep_freed_heap_memory() -> bool:
    """Set glibc's mmap and trim thresholds (see the module docstring) once; False where the C
    library is not glibc (macOS, Windows, musl) or refuses, and nothing changes."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # no glibc: mallopt does not exist
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
