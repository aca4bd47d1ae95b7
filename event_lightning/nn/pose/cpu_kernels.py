"""Loading the pose networks' compiled (numba) CPU loops, with the torch code as the fallback.

A kernel module (:mod:`~event_lightning.nn.pose.lif_kernels`) is imported, and so compiled or
loaded from numba's cache, the first time a CPU training step needs it: ``import event_lightning``
never pays for numba. Where it cannot load (numba missing or broken, ``NUMBA_DISABLE_JIT``, which would run
the loops as Python) the layers run their torch code, after one warning per module.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from types import ModuleType

__all__ = ["cpu_kernels"]


@functools.cache
def cpu_kernels(name: str) -> ModuleType | None:
    """The compiled module ``event_lightning.nn.pose.<name>``, or None where it cannot load (warned once)."""
    try:
        import numba

        if numba.config.DISABLE_JIT:
            raise RuntimeError("NUMBA_DISABLE_JIT is set")
        return importlib.import_module(f"event_lightning.nn.pose.{name}")
    except Exception as error:  # noqa: BLE001 - a broken compiler must not stop training
        warnings.warn(
            f"event_lightning: the compiled CPU loops of {name} cannot load ({type(error).__name__}: {error}); "
            "those layers run their torch code (same values, slower)",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
