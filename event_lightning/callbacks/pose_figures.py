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

import numpy as np
import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure

from event_lightning.callbacks.tensorboard_figures.periodic import _PeriodicFigureCallback
from event_lightning.viz.pose import plot_pose_overlay

__all__ = ["PoseOverlayLogger", "pose_overlay_figures"]


def _grid_pixels(crop_xy: np.ndarray, scale: float) -> np.ndarray:
    """Crop pixels (what ``predict`` writes) -> the grid pixels of the model's input frames."""
    return (crop_xy - (scale - 1) / 2) / scale


def pose_overlay_figures(batch: dict[str, Any], predictions: dict[str, Any], n_samples: int) -> list[Figure]:
    """One overlay per sample: the last predicted step against its label, over the input events.

    Args:
        batch: a DHP19 batch (``cnn_input [B, C, H, W]`` and ``cnn_landmarks [B, J, 2]`` for the
            CNN; ``events [B, T, P, H, W]`` and ``landmarks [B, L, J, 2]`` for the sequence
            models; grid pixels). With stacked views the first view is drawn.
        predictions: what the model's ``predict_step`` returned (``joints_2d`` in crop pixels).
        n_samples: how many samples of the batch to draw.
    """
    if "joints_2d" not in predictions:
        raise ValueError(f"PoseOverlayLogger: predict_step returned {sorted(predictions)}, expected 'joints_2d'")
    scale = float(torch.as_tensor(batch.get("pixel_scale", 1.0)).flatten()[0])
    stacked = torch.as_tensor(batch["projection"]).ndim == 4 if "projection" in batch else False
    joints = predictions["joints_2d"].detach().cpu().numpy()
    if stacked:
        joints = joints[:, 0]  # first view
    sequence = "events" in batch
    if sequence:
        events = batch["events"][:, 0] if stacked else batch["events"]  # [B, T, P, H, W]
        labels = batch["landmarks"][:, 0] if stacked else batch["landmarks"]  # [B, L, J, 2]
        background = events.sum(1)  # the window's events, [B, P, H, W]
        predicted = joints[:, -1]  # the last step's estimate
        reference = labels[:, -1]
    else:
        frames = batch["cnn_input"][:, 0] if stacked else batch["cnn_input"]  # [B, C, H, W]
        background = frames.sum(1, keepdim=True)
        predicted = joints
        reference = batch["cnn_landmarks"][:, 0] if stacked else batch["cnn_landmarks"]
    figures = []
    for i in range(min(n_samples, len(predicted))):
        figures.append(
            plot_pose_overlay(
                background[i].detach().cpu().float().numpy(),
                _grid_pixels(predicted[i], scale),
                reference=torch.as_tensor(reference[i]).detach().cpu().numpy(),
                title=f"sample {i}: prediction (solid), label (dashed)",
            )
        )
    return figures


class PoseOverlayLogger(_PeriodicFigureCallback):
    """Log predicted and labelled skeletons of the first validation batch (``add_image`` under ``tag``).

    Args:
        every_n_epochs: log on validation epochs ``0, n, 2n, ...``.
        n_samples: samples drawn, one image each (``<tag>/sample_<i>``).
        tag: TensorBoard image tag prefix.
    """

    def __init__(self, every_n_epochs: int = 1, n_samples: int = 2, tag: str = "val/pose") -> None:
        super().__init__(every_n_epochs, "PoseOverlayLogger")
        if n_samples < 1:
            raise ValueError(f"PoseOverlayLogger: n_samples must be >= 1, found {n_samples}")
        self.n_samples, self.tag = n_samples, tag

    def _log_first_batch(self, writer: Any, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any) -> None:
        if not isinstance(batch, dict) or not ({"cnn_input", "events"} & set(batch)):
            raise ValueError(
                "PoseOverlayLogger: expected a DHP19 batch (a dict with 'cnn_input' or 'events'); "
                f"found {type(batch).__name__}{' with keys ' + str(sorted(batch)) if isinstance(batch, dict) else ''}"
            )
        with torch.no_grad():
            predictions = pl_module.predict_step(batch, 0)
        for i, fig in enumerate(pose_overlay_figures(batch, predictions, self.n_samples)):
            self._log(writer, f"{self.tag}/sample_{i}", fig, trainer.global_step)
