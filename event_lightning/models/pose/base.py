"""What every pose model shares: heatmap loss, argmax decoding, MPJPE scoring (2D, held, 3D) and logging."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from event_lightning.metrics.mpjpe import MPJPE
from event_lightning.metrics.triangulation import triangulate
from event_lightning.models.base import CompilableModule
from event_lightning.nn.pose.heatmaps import argmax_decode, render_heatmaps
from event_lightning.nn.pose.snn_unet import SpikingConvBN

# Per-view entries of a batch with stacked camera views ([B, V, ...]).
_VIEW_KEYS = (
    "cnn_input",
    "events",
    "cnn_input_next",
    "cnn_landmarks",
    "landmarks",
    "projection",
    "camera_centre",
    "camera",
)


def _fold_views(batch: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """``[B, V, ...]`` per-view entries -> ``[B * V, ...]``; returns the view count (1 if unstacked)."""
    projection = batch.get("projection")
    if projection is None or projection.ndim != 4:
        return batch, 1
    views = projection.shape[1]
    folded = dict(batch)
    for key in _VIEW_KEYS:
        if key in batch:
            folded[key] = batch[key].flatten(0, 1)
    return folded, views


@dataclass(frozen=True)
class LabelledSteps:
    """The time steps of a window that have labels: label ``k`` at step ``(k + 1) * stride - 1``.

    That is where :class:`~event_lightning.data.datasets.dhp19.sampling.DHP19Sampling` puts them
    (``label_steps``: labels every 10 ms, every ``stride``-th bin). The models take it from the
    batch's shapes rather than from its ``label_steps`` tensor, so no step reads a device value
    back to the host.

    Attributes:
        stride: bins per label period (``T / L``).
        count: labels used (all ``L``, or those before ``eval_steps``).
    """

    stride: int
    count: int

    @classmethod
    def of(cls, n_steps: int, n_labels: int, eval_steps: int | None = None) -> LabelledSteps:
        """The labelled steps of ``n_steps`` bins with ``n_labels`` labels, cut to steps ``< eval_steps``."""
        if n_labels < 1 or n_steps % n_labels:
            raise ValueError(f"a window of {n_steps} time steps cannot hold {n_labels} evenly spaced labels")
        stride = n_steps // n_labels
        count = n_labels if eval_steps is None else min(n_labels, eval_steps // stride)
        return cls(stride, count)

    @property
    def steps(self) -> slice:
        """Selects the labelled steps from a time-first ``[T, ...]`` tensor."""
        return slice(self.stride - 1, self.stride * self.count, self.stride)

    @property
    def n_run(self) -> int:
        """Steps a window must run to reach its last used label."""
        return self.stride * self.count


def _batch_error(pred: Tensor, coords: Tensor, scale: Tensor | float) -> Tensor:
    """Mean joint error of one training batch in sensor pixels; NaN when no joint is labelled."""
    metric_error = torch.linalg.vector_norm(pred - torch.trunc(coords), dim=-1) * scale
    valid = torch.isfinite(metric_error)
    return torch.where(valid, metric_error, 0.0).sum() / valid.sum()


def average_running_stats(module: nn.Module, trainer: pl.Trainer) -> None:
    """Average the BatchNorm running statistics of ``module`` over the DDP ranks, in place.

    DDP keeps the parameters equal, not these buffers: every rank updates them from its own
    batch, and the next forward silently overwrites them with rank 0's. Averaging after every
    batch keeps every rank's model identical at every step and lets the running averages see
    every rank's batches (they are linear in the batch statistics, so this is the running
    average of the ranks' mean statistics). One collective per batch, no host sync; nothing
    happens in a single process.
    """
    if trainer.world_size < 2:
        return
    buffers = [
        buffer
        for bn in module.modules()
        if isinstance(bn, _BatchNorm) and bn.track_running_stats
        for buffer in (bn.running_mean, bn.running_var)
    ]
    if buffers:
        flat = trainer.strategy.reduce(torch.cat([buffer.flatten() for buffer in buffers]), reduce_op="mean")
        for buffer, value in zip(buffers, flat.split([buffer.numel() for buffer in buffers]), strict=True):
            buffer.copy_(value.view_as(buffer))


class _PoseModule(CompilableModule, ABC):
    """Loss, decoding, metrics and logging shared by the pose models."""

    def __init__(
        self,
        lr: float,
        sigma: float,
        heatmap_border: str,
        eval_steps: int | None,
        compile: bool,
        sensor_size: list[int] | None = None,
        n_time_steps: int | None = None,
        grid_multiple: int = 1,
    ) -> None:
        super().__init__(compile=compile)
        self.lr, self.sigma, self.heatmap_border, self.eval_steps = lr, sigma, heatmap_border, eval_steps
        # sensor_size ([W, H, P] of the frames) and n_time_steps come from the DataModule (CLI links).
        if sensor_size is not None and (sensor_size[0] % grid_multiple or sensor_size[1] % grid_multiple):
            raise ValueError(
                f"{type(self).__name__} needs frames whose width and height are multiples of {grid_multiple}; "
                f"the data gives {sensor_size[0]}x{sensor_size[1]} (change data.downsample)"
            )
        if eval_steps is not None and n_time_steps is not None and eval_steps > n_time_steps:
            raise ValueError(f"eval_steps ({eval_steps}) exceeds the data's n_time_steps ({n_time_steps})")
        self.mpjpe = nn.ModuleDict({stage: MPJPE() for stage in ("val", "test")})
        self.mpjpe_held = nn.ModuleDict({stage: MPJPE() for stage in ("val", "test")})
        self.mpjpe_3d = nn.ModuleDict({stage: MPJPE() for stage in ("val", "test")})

    # -------------------------------------------------------------- loss and decoding

    def heatmap_loss(self, heatmaps: Tensor, coords: Tensor) -> Tensor:
        """MSE between ``[..., J, H, W]`` predictions and Gaussians at ``[..., J, 2]`` coordinates."""
        target = render_heatmaps(
            coords, heatmaps.shape[-2], heatmaps.shape[-1], self.sigma, heatmaps.dtype, self.heatmap_border
        )
        return F.mse_loss(heatmaps, target)

    @staticmethod
    def decode(heatmaps: Tensor) -> Tensor:
        """Argmax joint pixels ``[..., J, 2]`` of ``[..., J, H, W]`` heatmaps."""
        return argmax_decode(heatmaps.detach())

    @staticmethod
    def _scale(batch: dict[str, Any]) -> Tensor | float:
        """Sensor pixels per grid pixel: the batch's ``pixel_scale`` (one value, kept on the device)."""
        scale = batch.get("pixel_scale")
        return 1.0 if scale is None else scale.flatten()[0]

    def _score(self, metric: MPJPE, pred: Tensor, coords: Tensor, scale: Tensor | float) -> None:
        """2D MPJPE in sensor pixels: ``pred``/``coords`` ``[B, L, J, 2]`` grid pixels."""
        metric.update(pred * scale, torch.trunc(coords) * scale)

    @staticmethod
    def _crop_pixels(pred: Tensor, scale: Tensor | float) -> Tensor:
        """Grid pixels -> crop pixels: the centre of the ``scale x scale`` block a grid pixel covers."""
        return pred * scale + (scale - 1) / 2

    def _triangulate(self, pred: Tensor, batch: dict[str, Any], views: int, scale: Tensor | float) -> Tensor:
        """Points in mm ``[B, L, J, 3]`` from ``pred [B * V, L, J, 2]`` grid pixels of ``V >= 2`` views."""
        crop_xy = self._crop_pixels(pred, scale).unflatten(0, (-1, views)).transpose(0, 1)  # [V, B, L, J, 2]
        projection = batch["projection"].unflatten(0, (-1, views))[0]
        centre = batch["camera_centre"].unflatten(0, (-1, views))[0]
        return triangulate(crop_xy, projection, centre)

    def _score_3d(
        self,
        metric: MPJPE,
        pred: Tensor,
        batch: dict[str, Any],
        views: int,
        label_3d: Tensor,
        scale: Tensor | float,
    ) -> None:
        """Triangulate ``pred [B * V, L, J, 2]`` grid pixels across views; score in mm vs ``label_3d``."""
        if views < 2:
            return
        points = self._triangulate(pred, batch, views, scale)
        metric.update(points, label_3d.to(points.dtype))

    def _predictions(self, pred: Tensor, batch: dict[str, Any], views: int) -> dict[str, Tensor]:
        """What ``predict`` writes, from ``pred [B * V, L, J, 2]`` grid pixels (see docs/cli.md).

        ``joints_2d``: crop pixels ``[B, (V,) L, J, 2]`` (the view axis only with stacked views);
        ``joints_3d``: triangulated mm ``[B, L, J, 3]`` with two or more stacked views;
        ``camera`` / ``ms_start``: which camera and window each prediction belongs to.
        """
        scale = self._scale(batch)
        crop_xy = self._crop_pixels(pred, scale)
        out = {"joints_2d": crop_xy.unflatten(0, (-1, views)) if views > 1 else crop_xy}
        if views > 1:
            out["joints_3d"] = self._triangulate(pred, batch, views, scale).float()
        for key in ("camera", "ms_start"):
            if key in batch:  # per-view entries were folded into the batch axis; unfold them
                folded = views > 1 and key in _VIEW_KEYS
                out[key] = batch[key].unflatten(0, (-1, views)) if folded else batch[key]
        return out

    # -------------------------------------------------------------- validation and test

    @abstractmethod
    def _eval_step(self, batch: dict[str, Any], stage: str) -> Tensor:
        """Log the loss of one ``stage`` (``"val"`` / ``"test"``) batch, update its metrics, return the loss."""

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._eval_step(batch, "test")

    def _log_curve(self, stage: str, name: str, metric: MPJPE) -> None:
        if metric.update_count == 0:
            return
        curve = metric.compute().reshape(-1)
        self.log(f"{stage}/{name}", MPJPE.window_mean(curve).float())
        self.log(f"{stage}/{name}_last", MPJPE.last_step(curve).float())
        if len(curve) > 1:
            for k, value in enumerate(curve):
                self.log(f"{stage}/{name}_step{k + 1}", value.float())
        metric.reset()

    def _epoch_end(self, stage: str) -> None:
        self._log_curve(stage, "mpjpe", self.mpjpe[stage])
        self._log_curve(stage, "mpjpe_held", self.mpjpe_held[stage])
        self._log_curve(stage, "mpjpe_3d", self.mpjpe_3d[stage])

    def on_validation_epoch_end(self) -> None:
        self._epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._epoch_end("test")

    def compile_targets(self) -> list[nn.Module]:
        """What ``compile: true`` compiles: what the network names (its step cells, or itself)."""
        return self.net.compile_targets()

    def on_after_backward(self) -> None:
        average_running_stats(self, self.trainer)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # foreach (the default on accelerators) on the CPU too: the same updates, bit for bit, as
        # the per-parameter loop the CPU defaults to, in 4.2 instead of 7.7 ms for the hybrid bench's
        # 100 parameter tensors
        return torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=self.lr, foreach=True)

    # -------------------------------------------------------------- energy monitor protocol

    def spiking_layers(self) -> dict[str, SpikingConvBN]:
        """Spiking blocks whose firing rates make synaptic operations (none for dense models)."""
        return {}

    def dense_layers(self) -> list[nn.Module]:
        """Convolutions that run densely (every MAC counted at every call)."""
        return [m for m in self.net.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
