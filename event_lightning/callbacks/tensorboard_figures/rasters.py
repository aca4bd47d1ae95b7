"""Spike rasters of one submodule: :func:`spike_raster_canvases` and :class:`SpikeRasterLogger`."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from event_lightning.callbacks.figure_budget import DEFAULT_SHARE
from event_lightning.callbacks.tensorboard_figures.periodic import _PeriodicFigureCallback
from event_lightning.viz.canvas import Canvas
from event_lightning.viz.canvas_figures import spike_raster_canvas


def select_output(output: Any, index: int | str | None, module: str = "module") -> torch.Tensor:
    """The spike tensor in a module's output: the tensor itself, or element/field/key ``index``.

    Raises ``ValueError`` listing the elements (names and shapes) when ``index`` does not fit.
    """
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        entries = {str(k): v for k, v in output.items()}
    elif isinstance(output, Sequence) and not isinstance(output, str):
        fields = getattr(output, "_fields", None)  # NamedTuple: allow names and indices
        entries = {str(i): v for i, v in enumerate(output)}
        if fields:
            entries.update(dict(zip(fields, output, strict=True)))
    else:
        raise ValueError(f"SpikeRasterLogger: {module} returned a {type(output).__name__}, not a tensor or tuple")

    def describe() -> str:
        return ", ".join(
            f"{k}: {tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__}" for k, v in entries.items()
        )

    if index is None or str(index) not in entries:
        raise ValueError(
            f"SpikeRasterLogger: {module} returned a {type(output).__name__}; init arg output_index must name the "
            f"spike element, found {index!r}; elements: {describe()}"
        )
    chosen = entries[str(index)]
    if not isinstance(chosen, torch.Tensor):
        raise ValueError(
            f"SpikeRasterLogger: element {index!r} of {module}'s output is not a tensor; elements: {describe()}"
        )
    return chosen


@dataclass(frozen=True)
class RasterSelection:
    """Which part of a spike tensor to draw.

    Attributes:
        n_samples: batch elements, one raster each.
        max_neurons: neurons per raster.
        neurons: ``"most_active"`` (the sample's ``max_neurons`` busiest neurons, in index order)
            or ``"first"`` (neurons ``0 .. max_neurons - 1`` of the flattened layer).
        time_first: spikes are ``[T, B, ...]`` (False: ``[B, T, ...]``).
    """

    n_samples: int = 2
    max_neurons: int = 64
    neurons: str = "most_active"
    time_first: bool = True

    def __post_init__(self) -> None:
        if self.neurons not in ("most_active", "first"):
            raise ValueError(f"SpikeRasterLogger: neurons must be 'most_active' or 'first', found {self.neurons!r}")
        if self.n_samples < 1 or self.max_neurons < 1:
            raise ValueError(
                f"SpikeRasterLogger: n_samples and max_neurons must be >= 1, found {self.n_samples}, {self.max_neurons}"
            )


def spike_raster_canvases(
    spikes: torch.Tensor,
    selection: RasterSelection = RasterSelection(),
    *,
    dt_ms: float | None = None,
    name: str = "spikes",
) -> list[Canvas]:
    """One raster canvas per sample of ``spikes [T, B, ...]`` (trailing axes flattened into neurons),
    drawn by :func:`~event_lightning.viz.canvas_figures.spike_raster_canvas`.

    Args:
        spikes: time-first spike tensor (nonzero = spike); ``[B, T, ...]`` with ``selection.time_first=False``.
        selection: samples and neurons drawn (:class:`RasterSelection`).
        dt_ms: step length for a time axis in ms (steps otherwise).
        name: shown in the titles.
    """
    if spikes.dim() < 3:
        raise ValueError(
            f"SpikeRasterLogger: {name} gave a tensor of shape {tuple(spikes.shape)}; expected [T, B, ...] spikes "
            "(set init arg time_first=false for [B, T, ...])"
        )
    spikes = spikes.detach().float().cpu()
    if not selection.time_first:
        spikes = spikes.transpose(0, 1)
    flat = spikes.flatten(2)  # [T, B, N]
    n_neurons = flat.shape[2]
    canvases = []
    for b in range(min(selection.n_samples, flat.shape[1])):
        sample = flat[:, b]  # [T, N]
        k = min(selection.max_neurons, n_neurons)
        if selection.neurons == "first":
            chosen = torch.arange(k)
        else:
            chosen = torch.topk((sample != 0).sum(0), k).indices.sort().values
        rate = float((sample != 0).float().mean())
        which = "first" if selection.neurons == "first" else "most active"
        title = f"{name} #{b}: {k} {which} of {n_neurons} neurons, rate {rate:.3f}"
        canvases.append(spike_raster_canvas(sample[:, chosen], dt_ms=dt_ms, title=title))
    return canvases


class SpikeRasterLogger(_PeriodicFigureCallback):
    """Log spike rasters of one submodule on the first validation batch (``add_image``).

    A forward hook on ``pl_module.get_submodule(module)`` records its output during that batch only.

    Args:
        module: dotted name of the spiking submodule in the LightningModule, e.g. ``net.lif``
            (LIF classifier), ``net.encoder.layers.0`` (HG-VAE), ``net.down1.lif`` (pose SNN).
            An unknown name is an error listing the available names.
        output_index: which element of a tuple/NamedTuple/dict output holds the spikes (index, field
            name or key); ignored when the module returns a tensor. Element 0 is the spikes for
            every spiking layer of this package.
        every_n_epochs: log on validation epochs ``0, n, 2n, ...``.
        n_samples, max_neurons, neurons, time_first: see :class:`RasterSelection`.
        dt_ms: step length for a time axis in ms (steps otherwise).
        tag: TensorBoard tag prefix; images go to ``{tag}/sample_{b}`` (default ``val/spikes/{module}``).
        time_budget: share of the training wall time all the run's figures may take (default 0.05;
            null: every candidate epoch); see :mod:`event_lightning.callbacks.figure_budget`.
    """

    def __init__(
        self,
        module: str,
        output_index: int | str | None = 0,
        every_n_epochs: int = 1,
        n_samples: int = 2,
        max_neurons: int = 64,
        neurons: str = "most_active",
        time_first: bool = True,
        dt_ms: float | None = None,
        tag: str | None = None,
        time_budget: float | None = DEFAULT_SHARE,
    ) -> None:
        super().__init__(every_n_epochs, "SpikeRasterLogger", time_budget)
        self.module, self.output_index, self.dt_ms = module, output_index, dt_ms
        self.selection = RasterSelection(n_samples, max_neurons, neurons, time_first)
        self.tag = tag or f"val/spikes/{module}"
        self._target: nn.Module | None = None
        self._handle: Any = None
        self._captured: torch.Tensor | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Resolve the name before any training, so a typo fails at once and not after an epoch.
        try:
            self._target = pl_module.get_submodule(self.module)
        except AttributeError:
            names = [name for name, _ in pl_module.named_modules() if name]
            raise ValueError(
                f"SpikeRasterLogger: init arg module {self.module!r} is not a submodule of "
                f"{type(pl_module).__name__}; available: {', '.join(names)}"
            ) from None

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._remove_hook()

    def _remove_hook(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _hook(self, module: nn.Module, args: tuple, output: Any) -> None:
        self._captured = select_output(output, self.output_index, self.module).detach()
        self._remove_hook()  # the first forward of the batch is the one drawn

    def on_validation_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if batch_idx != 0 or dataloader_idx != 0 or self._target is None or self._writer(trainer) is None:
            return
        self._captured = None  # kept until the end of the epoch draws it
        self._remove_hook()
        self._handle = self._target.register_forward_hook(self._hook)

    def _log_first_batch(self, writer: Any, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any) -> None:
        # The hook is only registered on this batch (see on_validation_batch_start).
        self._remove_hook()
        if self._captured is None:
            warnings.warn(
                f"SpikeRasterLogger: {self.module} did not run during the first validation batch; nothing logged",
                stacklevel=3,
            )
            return
        spikes, self._captured = self._captured, None
        canvases = spike_raster_canvases(spikes, self.selection, dt_ms=self.dt_ms, name=self.module)
        for b, canvas in enumerate(canvases):
            self._log(writer, f"{self.tag}/sample_{b}", canvas, trainer.global_step)
