"""The validation input drawn as ON/OFF event panels: :func:`input_canvas` and :class:`InputFigureLogger`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from event_lightning.callbacks.figure_budget import DEFAULT_SHARE
from event_lightning.callbacks.tensorboard_figures.classes import (
    ForwardOutput,
    batch_labels,
    class_predictions,
    sample_label,
)
from event_lightning.callbacks.tensorboard_figures.periodic import _PeriodicFigureCallback
from event_lightning.events.core import SensorSize, make_events
from event_lightning.events.represent.frames import to_frame
from event_lightning.viz.canvas import Canvas
from event_lightning.viz.canvas_figures import frame_rows_canvas

# Axis orders an input tensor may have. T time, B batch, P polarity (1 or 2), C channels shown one
# panel each, H and W pixels.
LAYOUTS = ("TBPHW", "BTPHW", "BPHW", "BCHW")

# Dict keys of this package's DataModules, in the order they are looked for, and their layout:
# frames of the classification / HG-VAE collates are time-first, the pose DataModule stacks
# per-sample sequences batch-first and gives the CNN its time bins as channels.
DICT_KEY_LAYOUTS: dict[str, str] = {"frames": "TBPHW", "events": "BTPHW", "cnn_input": "BCHW"}

_TOKEN_FIELDS = ("x", "y", "t", "p", "valid_mask")


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


def _sample_frames(tensor: Any, layout: str | None, n_samples: int) -> np.ndarray:
    """Any supported layout -> ``[n, T, P, H, W]`` float numpy of the first ``n <= n_samples`` samples."""
    shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else np.shape(tensor)
    if layout is None:
        layout = {5: "TBPHW", 4: "BCHW"}.get(len(shape))
        if layout is None:
            raise ValueError(
                f"InputFigureLogger: cannot guess the layout of an input of shape {shape}; set init arg "
                f"layout to one of {list(LAYOUTS)}"
            )
    if layout not in LAYOUTS:
        raise ValueError(f"InputFigureLogger: init arg layout must be one of {list(LAYOUTS)}, found {layout!r}")
    if len(shape) != len(layout):
        raise ValueError(
            f"InputFigureLogger: layout {layout!r} needs a {len(layout)}-D input, found shape {shape}; "
            "set init args batch_key / layout to match the batch"
        )
    # only the drawn samples are copied to the host and converted
    drawn = (slice(None), slice(0, n_samples)) if layout == "TBPHW" else (slice(0, n_samples),)
    if isinstance(tensor, torch.Tensor):
        array = tensor[drawn].detach().float().cpu().numpy()
    else:
        array = np.asarray(tensor)[drawn].astype(float)
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


def input_canvas(
    batch: Any,
    *,
    batch_key: str | int | None = None,
    layout: str | None = None,
    n_samples: int = 2,
    max_panels: int = 8,
    sensor_size: SensorSize | Sequence[int] | None = None,
    title: str | None = None,
    labels: Any = None,
    predictions: Any = None,
    class_names: Sequence[str] | None = None,
) -> Canvas:
    """Draw a batch's input as ON/OFF event panels, one row per sample, labelled with class and prediction.

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
        labels, predictions: class indices ``[B]`` (tensor or sequence) shown beside each row, or None.
        class_names: names of the class indices, shown instead of the numbers.

    Returns:
        A :class:`~event_lightning.viz.canvas.Canvas` (``.render()``: uint8 ``[H, W, 3]``): one
        image of ``n_samples`` rows of panels, each row labelled on its left, each panel with its
        step (or event) range above it.
    """
    if n_samples < 1 or max_panels < 1:
        raise ValueError(f"input_canvas: n_samples and max_panels must be >= 1, found {n_samples}, {max_panels}")
    tensor, layout = _pick_input(batch, batch_key, layout)
    if _is_token_batch(tensor):
        sensor = None if sensor_size is None else SensorSize.coerce(sensor_size)
        rows = _token_frames(tensor, sensor, n_samples, max_panels)
    else:
        samples = _sample_frames(tensor, layout, n_samples)
        rows = [_to_panels(sample, max_panels) for sample in samples]
    label_list = None if labels is None else np.asarray(as_numpy_labels(labels)).tolist()
    prediction_list = None if predictions is None else np.asarray(as_numpy_labels(predictions)).tolist()
    row_labels = [
        sample_label(
            b,
            None if label_list is None else int(label_list[b]),
            None if prediction_list is None else int(prediction_list[b]),
            class_names,
        )
        for b in range(len(rows))
    ]
    return frame_rows_canvas(
        [panels for panels, _ in rows], row_labels=row_labels, panel_labels=[titles for _, titles in rows], title=title
    )


def as_numpy_labels(values: Any) -> np.ndarray:
    """Class indices from a tensor (any device) or a sequence, as numpy."""
    return values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)


class InputFigureLogger(_PeriodicFigureCallback):
    """Log the first validation batch's input as event panels (``add_image`` under ``tag``).

    Each row is one sample, labelled with its class and, for classifiers, the model's prediction
    on that batch (a forward hook on the LightningModule during the first validation batch keeps
    its scores ``[B, num_classes]``; no second forward pass). Class names come from the
    DataModule's ``class_names`` when it has them.

    Args:
        every_n_epochs: log on validation epochs ``0, n, 2n, ...``.
        batch_key: dict key or tuple index of the input in the batch (see :func:`input_canvas`).
        layout: axis order of that tensor, one of :data:`LAYOUTS` (default: guessed, see :func:`input_canvas`).
        n_samples: samples drawn, one row each.
        max_panels: panels per sample (time steps are summed into this many).
        sensor_size: ``[W, H, P]`` for event-token batches; default the DataModule's ``sensor_size``.
        tag: TensorBoard image tag.
        time_budget: share of the training wall time all the run's figures may take (default 0.05;
            null: every candidate epoch); see :mod:`event_lightning.callbacks.figure_budget`.
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
        time_budget: float | None = DEFAULT_SHARE,
    ) -> None:
        super().__init__(every_n_epochs, "InputFigureLogger", time_budget)
        if layout is not None and layout not in LAYOUTS:
            raise ValueError(f"InputFigureLogger: init arg layout must be one of {list(LAYOUTS)}, found {layout!r}")
        if n_samples < 1 or max_panels < 1:
            raise ValueError(
                f"InputFigureLogger: n_samples and max_panels must be >= 1, found {n_samples}, {max_panels}"
            )
        self.batch_key, self.layout, self.tag = batch_key, layout, tag
        self.n_samples, self.max_panels, self.sensor_size = n_samples, max_panels, sensor_size
        self._scores = ForwardOutput()

    def on_validation_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if batch_idx == 0 and dataloader_idx == 0 and self._writer(trainer) is not None:
            self._scores.start(pl_module)

    def _after_step(self, batch: Any, dataloader_idx: int) -> None:
        if self._scores.active:
            self._scores.stop()  # the scores of this batch stay in self._scores.output

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._scores.stop()

    def _log_first_batch(self, writer: Any, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any) -> None:
        datamodule = getattr(trainer, "datamodule", None)
        sensor = self.sensor_size
        if sensor is None and datamodule is not None:
            sensor = getattr(datamodule, "sensor_size", None)
        labels = batch_labels(batch)
        predictions = class_predictions(self._scores.output, labels)
        self._scores.output = None
        canvas = input_canvas(
            batch,
            batch_key=self.batch_key,
            layout=self.layout,
            n_samples=self.n_samples,
            max_panels=self.max_panels,
            sensor_size=sensor,
            title=f"epoch {trainer.current_epoch}",
            labels=labels,
            predictions=predictions,
            class_names=getattr(datamodule, "class_names", None),
        )
        self._log(writer, self.tag, canvas, trainer.global_step)
