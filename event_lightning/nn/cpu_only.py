"""Marking code paths that read tensor values on the host by design and run on CPU tensors only.

Some CPU fast paths decide from the data (a density probe) or hand it to numpy (building a sparse
matrix). On the CPU that costs nothing: there is no device to wait for. On a GPU those paths never
run (they check the device first). The host-sync detector
(:func:`event_lightning.callbacks.host_sync.forbid_host_syncs`), which uses the CPU as a stand-in
for a GPU, lets host reads inside a function marked with :func:`cpu_only` through; the marked
function refuses tensors on any other device, so the mark can never hide a real device sync.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import CodeType
from typing import Any, TypeVar

import torch

__all__ = ["cpu_only", "is_cpu_only_code"]

_F = TypeVar("_F", bound=Callable[..., Any])
_CPU_ONLY_CODE: set[CodeType] = set()


def cpu_only(fn: _F) -> _F:
    """Mark ``fn`` as a CPU-only path (see the module docstring): it raises ``ValueError`` when
    given a tensor that is not on the CPU, and its host reads are not host syncs."""
    _CPU_ONLY_CODE.add(fn.__code__)

    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any) -> Any:
        for value in (*args, *kwargs.values()):
            if isinstance(value, torch.Tensor) and value.device.type != "cpu":
                raise ValueError(f"{fn.__qualname__} is a CPU-only path; it was given a tensor on {value.device}")
        return fn(*args, **kwargs)

    return checked  # type: ignore[return-value]


def is_cpu_only_code(code: CodeType) -> bool:
    """Whether ``code`` is the body of a function marked with :func:`cpu_only`."""
    return code in _CPU_ONLY_CODE
