"""Finding host syncs: places where a training or validation step waits for the GPU.

On a GPU the host queues kernels and runs ahead; anything that needs a device value on the host
(``.item()``, ``bool(t)``, ``float(t)``, ``.tolist()``, ``.cpu()``, ``.numpy()``), an operation
whose output size depends on device data (boolean-mask indexing, ``nonzero``, ``unique``,
``masked_select``, ``repeat_interleave`` without ``output_size``, ``bincount``) or a tensor built
from Python/numpy values (``torch.tensor(...)``: a pageable host-to-device copy) stalls that
pipeline once per step.

:func:`forbid_host_syncs` raises :class:`HostSyncError` on any of them inside its block, on
every device: on CUDA it also sets ``torch.cuda.set_sync_debug_mode("error")``, and on the CPU
it recognises the same operations through a torch function mode (the Python calls) and a
dispatch mode (the aten operations they lower to), so the check runs in CPU-only tests.
Optimiser internals are exempt: torch keeps Adam's step counter on the host on purpose; so are
CPU-only fast paths marked with :func:`event_lightning.nn.cpu_only.cpu_only` (they never run on a
GPU, and refuse its tensors).

:class:`HostSyncGuard` is a callback that applies the check to the first ``check_steps``
training and validation steps of a run and to the per-step hooks of event_lightning's callbacks.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import pytorch_lightning as pl
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from event_lightning.nn.cpu_only import is_cpu_only_code

__all__ = ["HostSyncError", "HostSyncGuard", "forbid_host_syncs"]

# Tensor methods whose result lives on the host.
_HOST_READS = frozenset(
    {"item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__", "__array__", "__complex__"}
)
_aten = torch.ops.aten
# Operations whose output size depends on device values, or that return a host value.
_DATA_DEPENDENT = frozenset(
    {
        _aten._local_scalar_dense.default,
        _aten.nonzero.default,
        _aten.argwhere.default,
        _aten.masked_select.default,
        _aten._unique2.default,
        _aten.unique_dim.default,
        _aten.unique_consecutive.default,
        _aten.repeat_interleave.Tensor,
        _aten.bincount.default,
        _aten.equal.default,
        _aten.is_nonzero.default,
    }
)
_INDEXING = frozenset(
    {_aten.index.Tensor, _aten.index_put.default, _aten.index_put_.default, _aten._index_put_impl_.default}
)
# (path fragment, function or None) of frames that may sync by design: optimiser step counters
# live on the host (non-capturable Adam); Lightning builds a logged key's accumulator from Python
# numbers once, the first time the key is logged.
_EXEMPT_FRAMES = (
    ("/torch/optim/", None),
    ("/pytorch_lightning/trainer/connectors/logger_connector/result.py", "__init__"),
)


class HostSyncError(RuntimeError):
    """A step did something that makes the host wait for the device."""


def _exempt(entry: FrameType | None) -> bool:
    """Whether an exempt frame lies between the operation and the block that forbids syncs: an
    optimiser or Lightning frame of :data:`_EXEMPT_FRAMES`, or a function marked
    :func:`~event_lightning.nn.cpu_only.cpu_only` (it refuses anything but CPU tensors).

    Only that stretch counts: Lightning runs ``training_step`` inside ``optimizer.step(closure)``,
    so optimiser frames above the block say nothing about the operation.
    """
    frame = sys._getframe(2)
    while frame is not None and frame is not entry:
        if is_cpu_only_code(frame.f_code):
            return True
        filename = frame.f_code.co_filename.replace("\\", "/")
        if any(path in filename and name in (None, frame.f_code.co_name) for path, name in _EXEMPT_FRAMES):
            return True
        frame = frame.f_back
    return False


def _caller() -> str:
    """``file:line`` of the innermost frame outside torch and this module."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename.replace("\\", "/")
        if "/torch/" not in filename and filename != __file__ and not filename.startswith("<"):
            return f"{filename}:{frame.f_lineno} ({frame.f_code.co_name})"
        frame = frame.f_back
    return "unknown caller"


def _is_mask(index: Any) -> bool:
    return isinstance(index, torch.Tensor) and index.dtype in (torch.bool, torch.uint8)


class _HostReadMode(TorchFunctionMode):
    def __init__(self, what: str, entry: FrameType | None) -> None:
        super().__init__()
        self.what, self.entry = what, entry

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        name = getattr(func, "__name__", "")
        if name in _HOST_READS and not _exempt(self.entry):
            raise HostSyncError(f"{self.what}: Tensor.{name}() reads a device value on the host, at {_caller()}")
        return func(*args, **(kwargs or {}))


class _DeviceDependentMode(TorchDispatchMode):
    def __init__(self, what: str, entry: FrameType | None) -> None:
        super().__init__()
        self.what, self.entry = what, entry

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        problem = None
        if func in _DATA_DEPENDENT and not (func is _aten.repeat_interleave.Tensor and "output_size" in kwargs):
            problem = f"{func} has an output that depends on device values"
        elif func in _INDEXING and any(_is_mask(i) for i in (args[1] if len(args) > 1 else ()) or ()):
            problem = f"boolean-mask indexing ({func}) needs a nonzero() on the host"
        elif func is _aten.lift_fresh.default:
            problem = "a tensor built from Python/numpy values (torch.tensor, as_tensor, from_numpy) goes to the device"
        if problem is not None and not _exempt(self.entry):
            raise HostSyncError(f"{self.what}: {problem}, at {_caller()}")
        return func(*args, **kwargs)


@contextlib.contextmanager
def forbid_host_syncs(what: str = "step") -> Iterator[None]:
    """Raise :class:`HostSyncError` on any host sync inside the block (see the module docstring).

    Args:
        what: named in the error, e.g. ``"PoseSNN.training_step"``.
    """
    entry = sys._getframe(2)  # the frame of the ``with`` statement
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    previous = torch.cuda.get_sync_debug_mode() if cuda else None
    if cuda:
        torch.cuda.set_sync_debug_mode("error")
    try:
        with _HostReadMode(what, entry), _DeviceDependentMode(what, entry):
            yield
    finally:
        if cuda:
            torch.cuda.set_sync_debug_mode(previous)


_STEP_METHODS = ("training_step", "validation_step")
_PER_STEP_HOOKS = (
    "on_train_batch_start",
    "on_train_batch_end",
    "on_validation_batch_start",
    "on_validation_batch_end",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
)


class HostSyncGuard(pl.Callback):
    """Fails a run whose first training / validation steps sync with the host.

    Wraps ``training_step`` and ``validation_step`` of the LightningModule and the per-step hooks
    of every callback defined in ``event_lightning`` in :func:`forbid_host_syncs` for the first
    ``check_steps`` calls of each, then unwraps them (steady-state speed is untouched). Lightning's
    own loop and progress bar are not checked: they read logged values at their refresh rate.

    Args:
        check_steps: calls of each step method and hook to check (after the sanity check).
    """

    def __init__(self, check_steps: int = 2) -> None:
        if check_steps < 1:
            raise ValueError(f"host_sync_guard.check_steps must be >= 1, found {check_steps}")
        self.check_steps = check_steps
        self._unwrap: list[Callable[[], None]] = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        targets = [(pl_module, name) for name in _STEP_METHODS if hasattr(pl_module, name)]
        for callback in trainer.callbacks:
            # hooks written in event_lightning, on the callback's class or a base class of ours
            ours = [c for c in type(callback).__mro__ if c.__module__.startswith("event_lightning.")]
            if callback is not self:
                targets += [(callback, hook) for hook in _PER_STEP_HOOKS if any(hook in vars(c) for c in ours)]
        for owner, name in targets:
            self._wrap(trainer, owner, name)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for unwrap in self._unwrap:
            unwrap()
        self._unwrap = []

    def _wrap(self, trainer: pl.Trainer, owner: Any, name: str) -> None:
        original = getattr(owner, name)
        what = f"{type(owner).__name__}.{name}"
        calls = 0

        @functools.wraps(original)
        def checked(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            if trainer.sanity_checking or calls >= self.check_steps:
                return original(*args, **kwargs)
            calls += 1
            with forbid_host_syncs(what):
                return original(*args, **kwargs)

        setattr(owner, name, checked)
        self._unwrap.append(lambda: vars(owner).pop(name, None))
