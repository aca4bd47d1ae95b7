"""Generic TensorBoard figures usable from any config: the validation input, and spike rasters.

Two callbacks, each also usable as a plain function from Python:

* :class:`InputFigureLogger` / :func:`input_figure`: the first validation batch's input drawn as
  ON/OFF event panels (``event_lightning.viz.plot_frames``), one row per sample;
* :class:`SpikeRasterLogger` / :func:`spike_raster_figures`: a forward hook on a submodule named
  by its dotted path (``net.lif``) captures its spikes on the first validation batch and draws
  rasters (``event_lightning.viz.plot_spike_raster``).

Both log every ``every_n_epochs`` validation epochs (the sanity check excluded) at the trainer's
global step, on global rank 0 only, and do nothing (after one warning) when the trainer has no
TensorBoard logger. In a config::

    trainer:
      callbacks:
        - class_path: event_lightning.callbacks.tensorboard_figures.InputFigureLogger
          init_args: {every_n_epochs: 1}
        - class_path: event_lightning.callbacks.tensorboard_figures.SpikeRasterLogger
          init_args: {module: net.lif}
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure
from pytorch_lightning.loggers import TensorBoardLogger
from torch import nn

from event_lightning.events.core import SensorSize, make_events
from event_lightning.events.represent.frames import to_frame
from event_lightning.viz.events import plot_frames
from event_lightning.viz.spikes import figure_to_image, plot_spike_raster

__all__ = [
    "DICT_KEY_LAYOUTS",
    "LAYOUTS",
    "InputFigureLogger",
    "SpikeRasterLogger",
    "input_figure",
    "select_output",
    "spike_raster_figures",
]

# Axis orders an input tensor may have. T time, B batch, P polarity (1 or 2), C channels shown one
# panel each, H and W pixels.
LAYOUTS = ("TBPHW", "BTPHW", "BPHW", "BCHW")

# Dict keys of this package's DataModules, in the order they are looked for, and their layout:
# frames of the classification / HG-VAE collates are time-first, the pose DataModule stacks
# per-sample sequences batch-first and gives the CNN its time bins as channels.
DICT_KEY_LAYOUTS: dict[str, str] = {"frames": "TBPHW", "events": "BTPHW", "cnn_input": "BCHW"}

_TOKEN_FIELDS = ("x", "y", "t", "p", "valid_mask")


def _experiment(trainer: pl.Trainer) -> Any | None:
    """The SummaryWriter of the trainer's first TensorBoard logger, or None."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


class _PeriodicFigureCallback(pl.Callback):
    """Shared rules: every ``every_n_epochs`` validation epochs, rank 0 only, warn once without TensorBoard."""

    def __init__(self, every_n_epochs: int, name: str) -> None:
        super().__init__()
        if every_n_epochs < 1:
            raise ValueError(f"{name}.every_n_epochs must be >= 1, found {every_n_epochs}")
        self.every_n_epochs = every_n_epochs
        self._name = name
        self._warned = False

    def _writer(self, trainer: pl.Trainer) -> Any | None:
        """The SummaryWriter when this validation epoch should log, otherwise None."""
        if trainer.sanity_checking or not trainer.is_global_zero:
            return None
        if trainer.current_epoch % self.every_n_epochs != 0:
            return None
        writer = _experiment(trainer)
        if writer is None and not self._warned:
            self._warned = True
            warnings.warn(
                f"{self._name}: the trainer has no TensorBoardLogger (trainer.logger), so no figures are "
                "logged; set trainer.logger to pytorch_lightning.loggers.TensorBoardLogger",
                stacklevel=2,
            )
        return writer

    def _first_batch_writer(self, trainer: pl.Trainer, batch_idx: int, dataloader_idx: int) -> Any | None:
        """The SummaryWriter on the first batch of the first validation loader of a logging epoch."""
        if batch_idx != 0 or dataloader_idx != 0:
            return None
        return self._writer(trainer)

    @staticmethod
    def _log(writer: Any, tag: str, fig: Figure, step: int) -> None:
        writer.add_image(tag, figure_to_image(fig), global_step=step, dataformats="HWC")


# --------------------------------------------------------------------------- input figures


def _is_token_batch(batch: Any) -> bool:
    return all(hasattr(batch, name) for name in _TOKEN_FIELDS)


def _pick_input(batch: Any, batch_key: str | int | None, layout: str | None) -> tuple[Any, str | None]:
    """The part of ``batch`` to draw and its layout (None for token batches)."""
    if _is_token_batch(batch) and batch_key is None:
        return batch, None
    if isinstance(batch, torch.Tensor):
        return batch, layout
    if isinstance(batch, Mapping):
        if batch_key is None:
            found = [key for key in DICT_KEY_LAYOUTS if key in batch]
            if not found:
                raise ValueError(
                    f"InputFigureLogger: the batch is a dict with keys {sorted(map(str, batch))} and none of "
                    f"{list(DICT_KEY_LAYOUTS)}; set init arg batch_key to the key of the input tensor"
                )
            batch_key = found[0]
        if batch_key not in batch:
            raise ValueError(
                f"InputFigureLogger: batch_key {batch_key!r} is not in the batch; "
                f"its keys are {sorted(map(str, batch))}"
            )
        return batch[batch_key], layout or DICT_KEY_LAYOUTS.get(str(batch_key))
    if isinstance(batch, Sequence) and not isinstance(batch, str):
        index = 0 if batch_key is None else batch_key
        if not isinstance(index, int) or not -len(batch) <= index < len(batch):
            raise ValueError(
                f"InputFigureLogger: the batch is a {type(batch).__name__} of {len(batch)} elements; init arg "
                f"batch_key must be an integer index into it, found {batch_key!r}"
            )
        return batch[index], layout
    raise ValueError(
        f"InputFigureLogger: cannot find the input in a batch of type {type(batch).__name__}; the callback reads "
        "tensors, dicts (init arg batch_key), tuples/lists (batch_key = index) and event-token batches"
    )


def _to_panels(frames: np.ndarray, max_panels: int) -> tuple[np.ndarray, list[str]]:
    """``[T, P, H, W]`` -> at most ``max_panels`` sums of consecutive steps, and their titles.

    Trailing all-zero steps (time padding of shorter samples) are dropped first, so the panels
    cover the recording rather than the padding.
    """
    active = np.flatnonzero(frames.reshape(len(frames), -1).any(axis=1))
    steps = int(active[-1]) + 1 if len(active) else len(frames)
    frames = frames[:steps]
    n = min(max_panels, steps)
    starts = np.linspace(0, steps, n + 1).astype(np.int64)
    panels = np.add.reduceat(frames, starts[:-1], axis=0)
    if steps == 1:
        return panels, ["step 0"]
    titles = [f"steps {a}-{b - 1}" if b - a > 1 else f"step {a}" for a, b in zip(starts[:-1], starts[1:], strict=True)]
    return panels, titles


def _sample_frames(tensor: Any, layout: str | None) -> np.ndarray:
    """Any supported layout -> ``[B, T, P, H, W]`` float numpy."""
    array = tensor.detach().float().cpu().numpy() if isinstance(tensor, torch.Tensor) else np.asarray(tensor, float)
    if layout is None:
        layout = {5: "TBPHW", 4: "BCHW"}.get(array.ndim)
        if layout is None:
            raise ValueError(
                f"InputFigureLogger: cannot guess the layout of an input of shape {array.shape}; set init arg "
                f"layout to one of {list(LAYOUTS)}"
            )
    if layout not in LAYOUTS:
        raise ValueError(f"InputFigureLogger: init arg layout must be one of {list(LAYOUTS)}, found {layout!r}")
    if array.ndim != len(layout):
        raise ValueError(
            f"InputFigureLogger: layout {layout!r} needs a {len(layout)}-D input, found shape {array.shape}; "
            "set init args batch_key / layout to match the batch"
        )
    if layout == "TBPHW":
        array = array.transpose(1, 0, 2, 3, 4)
    elif layout == "BPHW":
        array = array[:, None]
    elif layout == "BCHW":
        array = array[:, :, None]  # each channel is one single-polarity panel
    if array.shape[2] not in (1, 2):
        raise ValueError(
            f"InputFigureLogger: with layout {layout!r} the polarity axis P has {array.shape[2]} entries (shape "
            f"{tensor.shape}), expected 1 or 2; set init arg layout (e.g. 'BCHW' draws each channel on its own)"
        )
    return array


def _token_frames(batch: Any, sensor_size: SensorSize | None, n_samples: int, max_panels: int) -> list[tuple]:
    """Event-token batch (x, y, t, p, valid_mask ``[B, L]``) -> per sample (panels, titles), equal event counts."""
    columns = {name: getattr(batch, name).detach().cpu().numpy() for name in _TOKEN_FIELDS}
    if sensor_size is None:
        valid = columns["valid_mask"]
        width = int(columns["x"][valid].max(initial=0)) + 1
        height = int(columns["y"][valid].max(initial=0)) + 1
        sensor_size = SensorSize(width, height, 2)
    out = []
    for b in range(min(n_samples, len(columns["x"]))):
        keep = columns["valid_mask"][b]
        t = columns["t"][b][keep]
        # Normalised float times keep their order when scaled to integers; the panels split by
        # event count, which does not depend on the time unit.
        t = np.round(t * 1e6).astype(np.int64) if t.dtype.kind == "f" else t.astype(np.int64)
        events = make_events(columns["x"][b][keep], columns["y"][b][keep], t, columns["p"][b][keep])
        n = max(1, min(max_panels, len(events)))
        panels = to_frame(events, sensor_size, n_event_bins=n).astype(np.float64)
        per_bin = len(events) // n
        out.append((panels, [f"events {k * per_bin}-{(k + 1) * per_bin - 1}" for k in range(n)]))
    return out


def input_figure(
    batch: Any,
    *,
    batch_key: str | int | None = None,
    layout: str | None = None,
    n_samples: int = 2,
    max_panels: int = 8,
    sensor_size: SensorSize | Sequence[int] | None = None,
    title: str | None = None,
) -> Figure:
    """Draw a batch's input as ON/OFF event panels, one row per sample.

    Args:
        batch: a tensor, a dict (the tensor at ``batch_key``; default the first of
            :data:`DICT_KEY_LAYOUTS`'s keys present), a tuple/list (element ``batch_key``, default 0)
            or an event-token batch with ``x, y, t, p, valid_mask`` ``[B, L]`` (Event2Vec).
        layout: axis order, one of :data:`LAYOUTS`; default from the dict key, else ``TBPHW`` for
            5-D and ``BCHW`` for 4-D inputs. ``[T, B, P, H, W]`` is the spiking models' convention.
        n_samples: samples drawn (the first ones of the batch).
        max_panels: panels per sample; consecutive time steps are summed into at most this many.
            Token batches are split into panels of equal event counts.
        sensor_size: ``[W, H, P]`` for token batches (default: the largest x, y in the batch + 1, P = 2).

    Returns:
        A :class:`~matplotlib.figure.Figure` with ``n_samples`` rows of panels.
    """
    if n_samples < 1 or max_panels < 1:
        raise ValueError(f"input_figure: n_samples and max_panels must be >= 1, found {n_samples}, {max_panels}")
    tensor, layout = _pick_input(batch, batch_key, layout)
    if _is_token_batch(tensor):
        sensor = None if sensor_size is None else SensorSize.coerce(sensor_size)
        rows = _token_frames(tensor, sensor, n_samples, max_panels)
    else:
        samples = _sample_frames(tensor, layout)
        rows = [_to_panels(samples[b], max_panels) for b in range(min(n_samples, len(samples)))]
    width = max(len(panels) for panels, _ in rows)
    frames, titles = [], []
    for b, (panels, panel_titles) in enumerate(rows):
        # Rows are padded with empty panels to one width so each row is one sample.
        pad = np.zeros((width - len(panels), *panels.shape[1:]), dtype=panels.dtype)
        frames.append(np.concatenate([panels, pad]))
        titles += [f"#{b} {t}" for t in panel_titles] + [""] * len(pad)
    return plot_frames(np.concatenate(frames), titles=titles, n_cols=width, shared_scale=False, suptitle=title)


class InputFigureLogger(_PeriodicFigureCallback):
    """Log the first validation batch's input as event panels (``add_image`` under ``tag``).

    Args:
        every_n_epochs: log on validation epochs ``0, n, 2n, ...``.
        batch_key: dict key or tuple index of the input in the batch (see :func:`input_figure`).
        layout: axis order of that tensor, one of :data:`LAYOUTS` (default: guessed, see :func:`input_figure`).
        n_samples: samples drawn, one row each.
        max_panels: panels per sample (time steps are summed into this many).
        sensor_size: ``[W, H, P]`` for event-token batches; default the DataModule's ``sensor_size``.
        tag: TensorBoard image tag.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        batch_key: str | int | None = None,
        layout: str | None = None,
        n_samples: int = 2,
        max_panels: int = 8,
        sensor_size: list[int] | None = None,
        tag: str = "val/input",
    ) -> None:
        super().__init__(every_n_epochs, "InputFigureLogger")
        if layout is not None and layout not in LAYOUTS:
            raise ValueError(f"InputFigureLogger: init arg layout must be one of {list(LAYOUTS)}, found {layout!r}")
        if n_samples < 1 or max_panels < 1:
            raise ValueError(
                f"InputFigureLogger: n_samples and max_panels must be >= 1, found {n_samples}, {max_panels}"
            )
        self.batch_key, self.layout, self.tag = batch_key, layout, tag
        self.n_samples, self.max_panels, self.sensor_size = n_samples, max_panels, sensor_size

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        writer = self._first_batch_writer(trainer, batch_idx, dataloader_idx)
        if writer is None:
            return
        sensor = self.sensor_size
        if sensor is None and getattr(trainer, "datamodule", None) is not None:
            sensor = getattr(trainer.datamodule, "sensor_size", None)
        fig = input_figure(
            batch,
            batch_key=self.batch_key,
            layout=self.layout,
            n_samples=self.n_samples,
            max_panels=self.max_panels,
            sensor_size=sensor,
            title=f"epoch {trainer.current_epoch}",
        )
        self._log(writer, self.tag, fig, trainer.global_step)


# --------------------------------------------------------------------------- spike rasters


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


def spike_raster_figures(
    spikes: torch.Tensor,
    selection: RasterSelection = RasterSelection(),
    *,
    dt_ms: float | None = None,
    name: str = "spikes",
) -> list[Figure]:
    """One raster figure per sample of ``spikes [T, B, ...]`` (trailing axes flattened into neurons).

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
    figures = []
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
        figures.append(plot_spike_raster(sample[:, chosen], dt_ms=dt_ms, title=title))
    return figures


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
    ) -> None:
        super().__init__(every_n_epochs, "SpikeRasterLogger")
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
        self._captured = None
        if batch_idx != 0 or dataloader_idx != 0 or self._target is None or self._writer(trainer) is None:
            return
        self._remove_hook()
        self._handle = self._target.register_forward_hook(self._hook)

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._remove_hook()
        if self._captured is None:
            if batch_idx == 0 and dataloader_idx == 0 and self._writer(trainer) is not None:
                warnings.warn(
                    f"SpikeRasterLogger: {self.module} did not run during the first validation batch; nothing logged",
                    stacklevel=2,
                )
            return
        spikes, self._captured = self._captured, None
        writer = self._writer(trainer)
        figures = spike_raster_figures(spikes, self.selection, dt_ms=self.dt_ms, name=self.module)
        for b, fig in enumerate(figures):
            self._log(writer, f"{self.tag}/sample_{b}", fig, trainer.global_step)
