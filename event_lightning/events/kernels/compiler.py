"""How the event kernels are compiled: numba's ``njit`` with an on-disk cache, and the numba types
of the arrays they take.

Every kernel is compiled for one explicit signature (eagerly, when its module is imported): one
machine-code version per kernel whatever the caller passes (contiguous or strided records,
writeable or read-only, e.g. a memory-mapped file), so the first-call cost is the same for every
caller and is paid once per process, or once per installation with the cache.

The cache lives where numba finds a writable place: ``NUMBA_CACHE_DIR`` when set, else the
``__pycache__`` next to the kernel sources, else the user's cache directory (``~/.cache/numba``).
When none is writable (a read-only site-packages and home directory) numba refuses ``cache=True``
outright; the kernels then compile without a cache in every process, after one warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numba
from numba import types

from event_lightning.events.core import EVENT_DTYPE

# Event records of any layout, read-only or not. numba types a field view of the packed records as
# an aligned array (it ignores numpy's alignment flag), so the kernels index the records
# themselves: numba knows that packed records are unaligned and loads their fields accordingly.
EVENTS = types.Array(numba.from_dtype(EVENT_DTYPE), 1, "A", readonly=True, aligned=False)
# Records a kernel writes (a fresh array from the caller)
EVENTS_OUT = types.Array(numba.from_dtype(EVENT_DTYPE), 1, "C", aligned=False)

_UNCACHED_WARNING = (
    "event_lightning: numba finds no writable cache directory (NUMBA_CACHE_DIR, the kernels' "
    "__pycache__, ~/.cache/numba), so the event kernels compile anew in every process; set "
    "NUMBA_CACHE_DIR to a writable directory to compile them once"
)
_warned_uncached = False


def jit(
    signature: types.Signature | list[types.Signature], error_model: str = "python"
) -> Callable[[Callable], Callable]:
    """``numba.njit(signature, cache=True, nogil=True)`` (one compiled version per signature given),
    without the cache where numba has no writable place for it (one warning per process).

    ``error_model="numpy"``: a float division by zero gives inf / nan instead of raising; without
    the zero-division branch LLVM can vectorise a loop that divides by an array element.
    """

    def compile_kernel(function: Callable) -> Callable:
        global _warned_uncached
        try:
            return numba.njit(signature, cache=True, nogil=True, error_model=error_model)(function)
        except RuntimeError as error:  # numba: "cannot cache function ...: no locator available"
            if "no locator available" not in str(error):
                raise
            if not _warned_uncached:
                warnings.warn(_UNCACHED_WARNING, RuntimeWarning, stacklevel=2)
                _warned_uncached = True
            return numba.njit(signature, nogil=True, error_model=error_model)(function)

    return compile_kernel
