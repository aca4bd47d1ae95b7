"""TensorBoard skeleton overlays for the pose models: prediction (solid) over the label (dashed).

:class:`PoseOverlayLogger` runs the model's ``predict_step`` on the first validation batch and
draws, for a few samples, the predicted joints and the labelled joints over the input events
(``event_lightning.viz.plot_pose_overlay``). It uses the same rules as the figures of
:mod:`event_lightning.callbacks.tensorboard_figures`: every ``every_n_epochs`` validation epochs,
the sanity check skipped, rank 0 only, one warning and nothing else without a TensorBoard logger.
In a pose config::

    trainer:
      callbacks:
        - class_path: event_lightning.callbacks.pose_figures.PoseOverlayLogger
          init_args: {every_n_epochs: 1, n_samples: 2}
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure
from torch import Tensor

from event_lightning.callbacks.figure_budget import DEFAULT_SHARE
from event_lightning.callbacks.tensorboard_figures.periodic import _PeriodicFigureCallback
from event_lightning.viz.pose import plot_pose_overlay

__all__ = ["PoseOverlayLogger", "overlay_inputs", "pose_overlay_figures"]


def overlay_inputs(batch: dict[str, Any], predictions: dict[str, Any], n_samples: int) -> dict[str, Tensor]:
    """What the overlays of the first ``n_samples`` samples draw, left on the batch's device.

    Args:
        batch: a DHP19 batch (``cnn_input [B, C, H, W]`` and ``cnn_landmarks [B, J, 2]`` for the
            CNN; ``events [B, T, P, H, W]`` and ``landmarks [B, L, J, 2]`` for the sequence
            models; grid pixels). With stacked views the first view is drawn.
        predictions: what the model's ``predict_step`` returned (``joints_2d`` in crop pixels).
        n_samples: how many samples of the batch to draw.

    Returns:
        ``background [N, P, H, W]`` (the window's events, or the CNN frame summed to one channel),
        ``predicted [N, J, 2]`` (the last step's estimate) and ``reference [N, J, 2]`` (its label),
        in grid pixels.
    """
    if "joints_2d" not in predictions:
        raise ValueError(f"PoseOverlayLogger: predict_step returned {sorted(predictions)}, expected 'joints_2d'")
    scale = batch["pixel_scale"].flatten()[0] if "pixel_scale" in batch else 1.0
    stacked = "projection" in batch and batch["projection"].ndim == 4
    joints = predictions["joints_2d"][:, 0] if stacked else predictions["joints_2d"]  # first view
    if "events" in batch:
        events = batch["events"][:, 0] if stacked else batch["events"]  # [B, T, P, H, W]
        labels = batch["landmarks"][:, 0] if stacked else batch["landmarks"]  # [B, L, J, 2]
        background, predicted, reference = events.sum(1), joints[:, -1], labels[:, -1]
    else:
        frames = batch["cnn_input"][:, 0] if stacked else batch["cnn_input"]  # [B, C, H, W]
        background, predicted = frames.sum(1, keepdim=True), joints
        reference = batch["cnn_landmarks"][:, 0] if stacked else batch["cnn_landmarks"]
    grid = (predicted - (scale - 1) / 2) / scale  # crop pixels (what predict writes) -> grid pixels
    return {
        "background": background[:n_samples].detach(),
        "predicted": grid[:n_samples].detach(),
        "reference": reference[:n_samples].detach(),
    }


def draw_overlays(inputs: dict[str, Tensor]) -> list[Figure]:
    """One overlay per sample of :func:`overlay_inputs` (read back to the host here)."""
    host = {key: value.cpu().float().numpy() for key, value in inputs.items()}
    return [
        plot_pose_overlay(
            host["background"][i],
            host["predicted"][i],
            reference=host["reference"][i],
            title=f"sample {i}: prediction (solid), label (dashed)",
        )
        for i in range(len(host["predicted"]))
    ]


def pose_overlay_figures(batch: dict[str, Any], predictions: dict[str, Any], n_samples: int) -> list[Figure]:
    """One overlay per sample: the last predicted step against its label, over the input events
    (arguments as :func:`overlay_inputs`)."""
    return draw_overlays(overlay_inputs(batch, predictions, n_samples))


class PoseOverlayLogger(_PeriodicFigureCallback):
    """Log predicted and labelled skeletons of the first validation batch (``add_image`` under ``tag``).

    The first validation batch of a logging epoch is kept; at the end of the validation epoch the
    model predicts on it and the figures are drawn and written, so no step waits for the GPU.

    Args:
        every_n_epochs: log on validation epochs ``0, n, 2n, ...``.
        n_samples: samples drawn, one image each (``<tag>/sample_<i>``).
        tag: TensorBoard image tag prefix.
        time_budget: share of the training wall time all the run's figures may take (default 0.05;
            null: every candidate epoch); see :mod:`event_lightning.callbacks.figure_budget`.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        n_samples: int = 2,
        tag: str = "val/pose",
        time_budget: float | None = DEFAULT_SHARE,
    ) -> None:
        super().__init__(every_n_epochs, "PoseOverlayLogger", time_budget)
        if n_samples < 1:
            raise ValueError(f"PoseOverlayLogger: n_samples must be >= 1, found {n_samples}")
        self.n_samples, self.tag = n_samples, tag

    def _log_first_batch(self, writer: Any, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any) -> None:
        if not isinstance(batch, dict) or not ({"cnn_input", "events"} & set(batch)):
            raise ValueError(
                "PoseOverlayLogger: expected a DHP19 batch (a dict with 'cnn_input' or 'events'); "
                f"found {type(batch).__name__}{' with keys ' + str(sorted(batch)) if isinstance(batch, dict) else ''}"
            )
        # in the validation step's precision: the same compiled graph, the same numbers
        with torch.no_grad(), trainer.precision_plugin.forward_context():
            predictions = pl_module.predict_step(batch, 0)
        for i, fig in enumerate(draw_overlays(overlay_inputs(batch, predictions, self.n_samples))):
            self._log(writer, f"{self.tag}/sample_{i}", fig, trainer.global_step)
