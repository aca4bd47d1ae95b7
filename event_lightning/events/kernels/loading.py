"""Which implementation runs: the compiled kernels, or the numpy code when they cannot load.

A kernel module is imported (and compiled, or loaded from numba's cache) the first time a
function needs it, so ``import event_lightning`` never pays for numba. The numpy implementations
stay in the functions themselves, for one case only: the compiled kernels cannot load (numba not
installed or broken on this platform, ``NUMBA_DISABLE_JIT=1``, which would run the kernels as
slow Python, or ``EVENT_LIGHTNING_KERNELS=numpy``). The first such function call warns once.
"""

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType

_ENVIRONMENT_SWITCH = "EVENT_LIGHTNING_KERNELS"
_loaded: dict[str, ModuleType | None] = {}
_fallback_reason: str | None = None


def _why_not_compiled() -> str | None:
    """Why the compiled kernels must not be used in this process, or None when they may."""
    if os.environ.get(_ENVIRONMENT_SWITCH, "").lower() == "numpy":
        return f"{_ENVIRONMENT_SWITCH}=numpy is set"
    try:
        import numba
    except Exception as error:  # noqa: BLE001 - a broken numba install raises more than ImportError
        return f"numba cannot be imported ({type(error).__name__}: {error})"
    if numba.config.DISABLE_JIT:
        return "NUMBA_DISABLE_JIT is set (the kernels would run as Python loops)"
    return None


def compiled_kernels(name: str) -> ModuleType | None:
    """The compiled kernel module ``event_lightning.events.kernels.<name>``, or None when the
    compiled kernels cannot load in this process (warned once; callers then run their numpy code)."""
    if name in _loaded:
        return _loaded[name]
    global _fallback_reason
    reason = _fallback_reason or _why_not_compiled()
    module = None
    if reason is None:
        try:
            module = importlib.import_module(f"event_lightning.events.kernels.{name}")
        except Exception as error:  # noqa: BLE001 - a compiler failure must not take the data path down
            reason = f"compiling the {name} kernels failed ({type(error).__name__}: {error})"
    if reason is not None and _fallback_reason is None:
        _fallback_reason = reason
        warnings.warn(
            f"event_lightning: {reason}; event representations and filters use the slower numpy "
            "implementations (same outputs)",
            RuntimeWarning,
            stacklevel=3,
        )
    _loaded[name] = module
    return module


def fallback_reason() -> str | None:
    """Why this process runs the numpy implementations (None: the compiled kernels are in use or
    not yet needed)."""
    return _fallback_reason
