"""LightningModules of the hybrid ANN-SNN pose method: CNN, SNN, RNN and the two hybrids.

All share the loss and the metrics (hybrid_pose spec §3):

* target: peak-normalised Gaussian heatmaps (sigma 2, 11x11, reflect padding) rendered on the
  device from the batch's joint coordinates (truncated to integer pixels, as the reference does);
* loss: MSE over all pixels, averaged over the labelled steps of a window;
* 2D MPJPE of the per-joint argmax against the truncated label, NaN joints ignored, in sensor
  pixels (grid pixels times the data's ``pixel_scale``): per step, mean over the window
  (``*/mpjpe``) and last step (``*/mpjpe_last``);
* "CNN held at 10 Hz": the CNN's prediction at the window start scored against every label of
  the window (``*/mpjpe_held``, CNN and hybrids);
* 3D MPJPE in mm (``*/mpjpe_3d``) when the batch stacks several camera views of the same window
  (``stack_test_views``): argmax pixels of every view are triangulated with the projection
  matrices.

Batches come from :class:`~event_lightning.data.datasets.dhp19.DHP19DataModule`.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from event_lightning.metrics.mpjpe import MPJPE
from event_lightning.metrics.triangulation import triangulate
from event_lightning.models.base import CompilableModule
from event_lightning.nn.pose.convlstm import RecurrentPoseUNet
from event_lightning.nn.pose.heatmaps import argmax_decode, render_heatmaps
from event_lightning.nn.pose.hybrid import HybridCNNRNN, HybridCNNSNN
from event_lightning.nn.pose.init import xavier_init
from event_lightning.nn.pose.lif import LIFParams
from event_lightning.nn.pose.snn_unet import SpikingConvBN, SpikingPoseUNet
from event_lightning.nn.pose.unet_cnn import PoseUNetCNN

__all__ = [
    "PoseCNN",
    "PoseHybridCNNRNN",
    "PoseHybridCNNSNN",
    "PoseRNN",
    "PoseSNN",
    "load_network_weights",
]

log = logging.getLogger(__name__)

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


def load_network_weights(module: nn.Module, path: str | Path, prefix: str = "net.", strict: bool = True) -> None:
    """Load a network's weights from a Lightning checkpoint (keys under ``prefix``) or a state dict.

    With ``strict=False`` missing and unexpected keys are logged (e.g. the pure SNN's tail
    BatchNorm, which the hybrid's bare tail does not have).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights {path} not found; train that model first (see cmds.txt)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = {k[len(prefix) :]: v for k, v in state["state_dict"].items() if k.startswith(prefix)}
        if not state:
            raise KeyError(f"{path}: no weights under '{prefix}' in the checkpoint's state_dict")
    result = module.load_state_dict(state, strict=strict)
    if not strict and (result.missing_keys or result.unexpected_keys):
        log.warning(
            "%s: loaded with missing keys %s and unexpected keys %s",
            path,
            result.missing_keys,
            result.unexpected_keys,
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


def _steps(batch: dict[str, Any], eval_steps: int | None) -> Tensor:
    """Label steps of the window (``[L]``), cut to those before ``eval_steps``."""
    steps = batch["label_steps"][0]
    return steps if eval_steps is None else steps[steps < eval_steps]


class _PoseModule(CompilableModule):
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
    def _scale(batch: dict[str, Any]) -> float:
        scale = batch.get("pixel_scale")
        return 1.0 if scale is None else float(torch.as_tensor(scale).flatten()[0])

    def _score(self, metric: MPJPE, pred: Tensor, coords: Tensor, scale: float) -> None:
        """2D MPJPE in sensor pixels: ``pred``/``coords`` ``[B, L, J, 2]`` grid pixels."""
        metric.update(pred * scale, torch.trunc(coords) * scale)

    @staticmethod
    def _crop_pixels(pred: Tensor, scale: float) -> Tensor:
        """Grid pixels -> crop pixels: the centre of the ``scale x scale`` block a grid pixel covers."""
        return pred * scale + (scale - 1) / 2

    def _triangulate(self, pred: Tensor, batch: dict[str, Any], views: int, scale: float) -> Tensor:
        """Points in mm ``[B, L, J, 3]`` from ``pred [B * V, L, J, 2]`` grid pixels of ``V >= 2`` views."""
        crop_xy = self._crop_pixels(pred, scale).unflatten(0, (-1, views)).transpose(0, 1)  # [V, B, L, J, 2]
        projection = batch["projection"].unflatten(0, (-1, views))[0]
        centre = batch["camera_centre"].unflatten(0, (-1, views))[0]
        return triangulate(crop_xy, projection, centre)

    def _score_3d(
        self, metric: MPJPE, pred: Tensor, batch: dict[str, Any], views: int, label_3d: Tensor, scale: float
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

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=self.lr)

    # -------------------------------------------------------------- energy monitor protocol

    def spiking_layers(self) -> dict[str, SpikingConvBN]:
        """Spiking blocks whose firing rates make synaptic operations (none for dense models)."""
        return {}

    def dense_layers(self) -> list[nn.Module]:
        """Convolutions that run densely (every MAC counted at every call)."""
        return [m for m in self.compile_targets()[0].modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]


class PoseCNN(_PoseModule):
    """The UNet CNN on 20-channel constant-count stacked histograms (one frame -> 13 heatmaps).

    Args:
        in_channels: channels of the CNN frame (2 x cnn_bins).
        n_joints: heatmaps.
        base_channels: UNet width (32).
        lr: Adam learning rate (1e-4; batch 8 in the data config).
        sigma: heatmap Gaussian sigma in grid pixels (2).
        heatmap_border: ``"reflect"`` (reference) or ``"zeros"`` (see ``render_heatmaps``).
        head_weight_div: the head's Xavier weights are divided by this (2500).
        eval_steps: labels of a window scored by the held baseline (None = all).
        compile: compile the network in place.
        sensor_size, n_time_steps: linked from the DataModule by the CLI; checked (the frame size
            must suit the network's poolings, ``eval_steps`` must fit the window), not stored
            elsewhere. Every pose model takes them.
    """

    def __init__(
        self,
        in_channels: int = 20,
        n_joints: int = 13,
        base_channels: int = 32,
        lr: float = 1e-4,
        sigma: float = 2.0,
        heatmap_border: str = "reflect",
        head_weight_div: float = 2500.0,
        eval_steps: int | None = None,
        compile: bool = False,
        sensor_size: list[int] | None = None,
        n_time_steps: int | None = None,
    ) -> None:
        super().__init__(lr, sigma, heatmap_border, eval_steps, compile, sensor_size, n_time_steps, 32)
        self.save_hyperparameters()
        self.net = PoseUNetCNN(in_channels, n_joints, base_channels)
        xavier_init(self.net, head=self.net.head, head_div=head_weight_div)

    def forward(self, cnn_input: Tensor) -> Tensor:
        """``[B, C, H, W]`` -> heatmaps ``[B, J, H, W]``."""
        return self.net(cnn_input)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        heatmaps = self(batch["cnn_input"])
        loss = self.heatmap_loss(heatmaps, batch["cnn_landmarks"])
        pred = self.decode(heatmaps)
        self.log("train/loss", loss, prog_bar=True)
        error, valid = _batch_error(pred, batch["cnn_landmarks"], self._scale(batch))
        if valid:
            self.log("train/mpjpe", error, prog_bar=True)
        return loss

    def _eval_step(self, batch: dict[str, Any], stage: str) -> Tensor:
        batch, views = _fold_views(batch)
        scale = self._scale(batch)
        heatmaps = self(batch["cnn_input"])
        loss = self.heatmap_loss(heatmaps, batch["cnn_landmarks"])
        self.log(f"{stage}/loss", loss, prog_bar=True)
        pred = self.decode(heatmaps)
        self._score(self.mpjpe[stage], pred.unsqueeze(1), batch["cnn_landmarks"].unsqueeze(1), scale)
        if "landmarks" in batch:
            steps = _steps(batch, self.eval_steps)
            labels = batch["landmarks"][:, : len(steps)]
            self._score(self.mpjpe_held[stage], pred.unsqueeze(1).expand_as(labels), labels, scale)
        if "cnn_label_3d" in batch:
            self._score_3d(self.mpjpe_3d[stage], pred.unsqueeze(1), batch, views, batch["cnn_label_3d"][:, None], scale)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._eval_step(batch, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Tensor]:
        batch, views = _fold_views(batch)
        out = self._predictions(self.decode(self(batch["cnn_input"])).unsqueeze(1), batch, views)
        # one estimate per window: drop the length-1 step axis
        for key in ("joints_2d", "joints_3d"):
            if key in out:
                out[key] = out[key].squeeze(-3)
        return out


def _batch_error(pred: Tensor, coords: Tensor, scale: float) -> tuple[Tensor, bool]:
    """Mean joint error of one training batch (sensor pixels) and whether any joint was labelled."""
    metric_error = torch.linalg.vector_norm(pred - torch.trunc(coords), dim=-1) * scale
    valid = torch.isfinite(metric_error)
    if not valid.any():
        return metric_error.new_zeros(()), False
    return metric_error[valid].mean(), True


class _SequencePoseModule(_PoseModule, ABC):
    """A model that maps a window of event bins to heatmaps at every step."""

    @abstractmethod
    def window(self, batch: dict[str, Any], n_steps: int | None = None) -> tuple[Tensor, Tensor | None]:
        """``(heatmaps [T, B, J, H, W], CNN heatmap at the window start or None)``."""

    def _sequence(self, batch: dict[str, Any], n_steps: int | None) -> Tensor:
        x_seq = batch["events"].transpose(0, 1)  # [B, T, ...] -> time-first [T, B, ...]
        return x_seq if n_steps is None else x_seq[:n_steps]

    def _window_loss(self, heatmaps: Tensor, batch: dict[str, Any], steps: Tensor) -> Tensor:
        coords = batch["landmarks"][:, : len(steps)].transpose(0, 1)  # [L, B, J, 2]
        return self.heatmap_loss(heatmaps[steps], coords)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        steps = _steps(batch, None)
        heatmaps, _ = self.window(batch)
        loss = self.training_loss(heatmaps, batch, steps)
        pred = self.decode(heatmaps[steps]).transpose(0, 1)
        error, valid = _batch_error(pred, batch["landmarks"][:, : len(steps)], self._scale(batch))
        if valid:
            self.log("train/mpjpe", error, prog_bar=True)
        return loss

    def training_loss(self, heatmaps: Tensor, batch: dict[str, Any], steps: Tensor) -> Tensor:
        loss = self._window_loss(heatmaps, batch, steps)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _eval_step(self, batch: dict[str, Any], stage: str) -> Tensor:
        batch, views = _fold_views(batch)
        scale = self._scale(batch)
        steps = _steps(batch, self.eval_steps)
        n_steps = None if self.eval_steps is None else int(steps.max()) + 1
        heatmaps, cnn_heatmap = self.window(batch, n_steps)
        loss = self._window_loss(heatmaps, batch, steps)
        self.log(f"{stage}/loss", loss, prog_bar=True)
        labels = batch["landmarks"][:, : len(steps)]
        pred = self.decode(heatmaps[steps]).transpose(0, 1)  # [B, L, J, 2]
        self._score(self.mpjpe[stage], pred, labels, scale)
        if cnn_heatmap is not None:
            held = self.decode(cnn_heatmap).unsqueeze(1).expand_as(labels)
            self._score(self.mpjpe_held[stage], held, labels, scale)
        if "label_3d" in batch:
            self._score_3d(self.mpjpe_3d[stage], pred, batch, views, batch["label_3d"][:, : len(steps)], scale)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._eval_step(batch, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Tensor]:
        batch, views = _fold_views(batch)
        heatmaps, _ = self.window(batch, None)
        return self._predictions(self.decode(heatmaps).transpose(0, 1), batch, views)  # [B * V, T, J, 2]


class PoseSNN(_SequencePoseModule):
    """The spiking UNet from scratch: 9 LIF layers, BN + leaky-integrator output (tau 2).

    Args:
        in_channels: event channels per step (2).
        n_joints: heatmaps.
        base_channels: width (32).
        tau, v_threshold, surrogate_alpha, detach_reset: LIF parameters (2.0, 1.0, 2.0, False).
        lr: Adam learning rate (5e-5; batch 2).
        sigma, heatmap_border, eval_steps, compile: as in :class:`PoseCNN`.
    """

    def __init__(
        self,
        in_channels: int = 2,
        n_joints: int = 13,
        base_channels: int = 32,
        tau: float = 2.0,
        v_threshold: float = 1.0,
        surrogate_alpha: float = 2.0,
        detach_reset: bool = False,
        lr: float = 5e-5,
        sigma: float = 2.0,
        heatmap_border: str = "reflect",
        eval_steps: int | None = None,
        compile: bool = False,
        sensor_size: list[int] | None = None,
        n_time_steps: int | None = None,
    ) -> None:
        super().__init__(lr, sigma, heatmap_border, eval_steps, compile, sensor_size, n_time_steps, 8)
        self.save_hyperparameters()
        lif = LIFParams(tau=tau, v_threshold=v_threshold, alpha=surrogate_alpha, detach_reset=detach_reset)
        self.net = SpikingPoseUNet(in_channels, n_joints, base_channels, lif, tail="integrator")
        xavier_init(self.net)

    def window(self, batch: dict[str, Any], n_steps: int | None = None) -> tuple[Tensor, Tensor | None]:
        return self.net(self._sequence(batch, n_steps)).out, None

    def spiking_layers(self) -> dict[str, SpikingConvBN]:
        return self.net.spiking_layers()

    def dense_layers(self) -> list[nn.Module]:
        return []


class PoseRNN(_SequencePoseModule):
    """The E2VID-style ConvLSTM UNet from scratch (states start at zero every window).

    Args:
        in_channels, n_joints, base_channels: as in :class:`PoseSNN`.
        num_encoders, num_residual_blocks: E2VID layout (3, 2).
        head_weight_div: division of the prediction conv's initial weights (1: the prediction is
            followed by BatchNorm, which cancels any scale in training).
        lr: Adam learning rate (1e-4; batch 2).
    """

    def __init__(
        self,
        in_channels: int = 2,
        n_joints: int = 13,
        base_channels: int = 32,
        num_encoders: int = 3,
        num_residual_blocks: int = 2,
        head_weight_div: float = 1.0,
        lr: float = 1e-4,
        sigma: float = 2.0,
        heatmap_border: str = "reflect",
        eval_steps: int | None = None,
        compile: bool = False,
        sensor_size: list[int] | None = None,
        n_time_steps: int | None = None,
    ) -> None:
        super().__init__(lr, sigma, heatmap_border, eval_steps, compile, sensor_size, n_time_steps, 8)
        self.save_hyperparameters()
        self.net = RecurrentPoseUNet(in_channels, n_joints, base_channels, num_encoders, num_residual_blocks)
        xavier_init(self.net, head=self.net.pred[0], head_div=head_weight_div)

    def window(self, batch: dict[str, Any], n_steps: int | None = None) -> tuple[Tensor, Tensor | None]:
        return self.net(self._sequence(batch, n_steps))[0], None


class _HybridModule(_SequencePoseModule):
    """Loading of the pretrained CNN (and recurrent network) for the hybrids."""

    net: HybridCNNSNN | HybridCNNRNN

    def _load_pretrained(self, stage: str, recurrent: nn.Module, recurrent_path: str | None, strict: bool) -> None:
        if self._pretrained_loaded:
            return
        paths = {"cnn_checkpoint": self.hparams.cnn_checkpoint, "recurrent": recurrent_path}
        for name, path in paths.items():
            if path is None:
                continue
            if not Path(path).is_file() and stage != "fit":
                # validate/test normally restore the whole hybrid from its own checkpoint afterwards.
                log.warning("%s %s not found; relying on the checkpoint given to %s", name, path, stage)
                continue
            target = self.net.cnn if name == "cnn_checkpoint" else recurrent
            load_network_weights(target, path, strict=strict if target is recurrent else True)
        if self.hparams.cnn_checkpoint is None:
            log.warning("hybrid pose model: no cnn_checkpoint given; the frozen CNN keeps its random weights")
        self._pretrained_loaded = True

    def compile_targets(self) -> list[nn.Module]:
        return [self.net]

    def dense_layers(self) -> list[nn.Module]:
        modules = [*self.net.cnn.modules(), *self.net.heads.modules()]
        return [m for m in modules if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]

    def window(self, batch: dict[str, Any], n_steps: int | None = None) -> tuple[Tensor, Tensor | None]:
        out = self.net(self._sequence(batch, n_steps), batch["cnn_input"])
        if self.training:  # the membrane-potential loss needs the final potentials
            self._final_state = out.final_state
        return out.heatmaps, out.cnn_heatmap


class PoseHybridCNNSNN(_HybridModule):
    """Hybrid CNN-SNN: frozen CNN every window, 9 state-initialiser heads, SNN with decaying residual.

    Args:
        cnn_checkpoint: PoseCNN checkpoint (``.ckpt``) or UNet state dict to start from.
        snn_checkpoint: optional PoseSNN checkpoint for the SNN (the tail BN keys are dropped).
        cnn_in_channels, cnn_base_channels: the CNN's layout (must match the checkpoint).
        in_channels, n_joints, base_channels: the SNN's layout.
        tau, v_threshold, surrogate_alpha, detach_reset: LIF parameters (3.0 at 100 Hz).
        output_decay: ``d`` in ``y_t = d y_{t-1} + o_t`` (0.8; 0.9 at 200 Hz).
        state_init, residual_output: the two ablations (both True = the full hybrid).
        mp_loss_weight: weight ``w`` of the membrane-potential loss: ``(1 - w) out + w mp`` (0.05).
        lr: Adam learning rate (5e-5; batch 2).
    """

    def __init__(
        self,
        cnn_checkpoint: str | None = None,
        snn_checkpoint: str | None = None,
        cnn_in_channels: int = 20,
        cnn_base_channels: int = 32,
        in_channels: int = 2,
        n_joints: int = 13,
        base_channels: int = 32,
        tau: float = 3.0,
        v_threshold: float = 1.0,
        surrogate_alpha: float = 2.0,
        detach_reset: bool = False,
        output_decay: float = 0.8,
        state_init: bool = True,
        residual_output: bool = True,
        mp_loss_weight: float = 0.05,
        lr: float = 5e-5,
        sigma: float = 2.0,
        heatmap_border: str = "reflect",
        eval_steps: int | None = None,
        compile: bool = False,
        sensor_size: list[int] | None = None,
        n_time_steps: int | None = None,
    ) -> None:
        super().__init__(lr, sigma, heatmap_border, eval_steps, compile, sensor_size, n_time_steps, 32)
        self.save_hyperparameters()
        lif = LIFParams(tau=tau, v_threshold=v_threshold, alpha=surrogate_alpha, detach_reset=detach_reset)
        cnn = PoseUNetCNN(cnn_in_channels, n_joints, cnn_base_channels)
        tail = "conv" if residual_output else "integrator"
        snn = SpikingPoseUNet(in_channels, n_joints, base_channels, lif, tail=tail)
        self.net = HybridCNNSNN(cnn, snn, output_decay, state_init, residual_output)
        xavier_init(self.net.snn)
        xavier_init(self.net.heads)
        self._pretrained_loaded = False

    def setup(self, stage: str) -> None:
        self._load_pretrained(stage, self.net.snn, self.hparams.snn_checkpoint, strict=False)

    def training_loss(self, heatmaps: Tensor, batch: dict[str, Any], steps: Tensor) -> Tensor:
        out_loss = self._window_loss(heatmaps, batch, steps)
        self.log("train/out_loss", out_loss)
        weight = self.hparams.mp_loss_weight
        if not self.net.state_init or weight == 0 or "cnn_input_next" not in batch:
            self.log("train/loss", out_loss, prog_bar=True)
            return out_loss
        target = self.net.cnn_states(batch["cnn_input_next"])
        final, self._final_state = self._final_state, None
        mp_loss = torch.stack([F.mse_loss(final[name], target[name]) for name in target]).mean()
        loss = (1 - weight) * out_loss + weight * mp_loss
        self.log("train/mp_loss", mp_loss)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def spiking_layers(self) -> dict[str, SpikingConvBN]:
        return self.net.snn.spiking_layers()


class PoseHybridCNNRNN(_HybridModule):
    """Hybrid CNN-RNN: frozen CNN, heads set the ConvLSTM hidden states, decaying residual output.

    Args:
        cnn_checkpoint: PoseCNN checkpoint or UNet state dict.
        rnn_checkpoint: optional PoseRNN checkpoint for the recurrent UNet.
        cnn_in_channels, cnn_base_channels: the CNN's layout.
        in_channels, n_joints, base_channels, num_encoders, num_residual_blocks: the RNN's layout.
        output_decay: ``d`` of the residual accumulation (0.8).
        state_init: hidden states from the CNN (False: zero states, residual output only).
        lr: Adam learning rate (1e-4; batch 2).
    """

    def __init__(
        self,
        cnn_checkpoint: str | None = None,
        rnn_checkpoint: str | None = None,
        cnn_in_channels: int = 20,
        cnn_base_channels: int = 32,
        in_channels: int = 2,
        n_joints: int = 13,
        base_channels: int = 32,
        num_encoders: int = 3,
        num_residual_blocks: int = 2,
        output_decay: float = 0.8,
        state_init: bool = True,
        lr: float = 1e-4,
        sigma: float = 2.0,
        heatmap_border: str = "reflect",
        eval_steps: int | None = None,
        compile: bool = False,
        sensor_size: list[int] | None = None,
        n_time_steps: int | None = None,
    ) -> None:
        super().__init__(lr, sigma, heatmap_border, eval_steps, compile, sensor_size, n_time_steps, 32)
        self.save_hyperparameters()
        cnn = PoseUNetCNN(cnn_in_channels, n_joints, cnn_base_channels)
        rnn = RecurrentPoseUNet(in_channels, n_joints, base_channels, num_encoders, num_residual_blocks)
        self.net = HybridCNNRNN(cnn, rnn, output_decay, state_init)
        xavier_init(self.net.rnn)
        xavier_init(self.net.heads)
        self._pretrained_loaded = False

    def setup(self, stage: str) -> None:
        self._load_pretrained(stage, self.net.rnn, self.hparams.rnn_checkpoint, strict=True)
