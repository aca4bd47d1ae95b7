"""Pose models that map a window of event bins to heatmaps at every step: the SNN and the RNN
from scratch (config/pose_snn*.yaml, config/pose_rnn*.yaml), and the base of the hybrids."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from torch import Tensor, nn

from event_lightning.models.pose.base import LabelledSteps, _batch_error, _fold_views, _PoseModule
from event_lightning.nn.pose.convlstm import RecurrentPoseUNet
from event_lightning.nn.pose.init import xavier_init
from event_lightning.nn.pose.lif import LIFParams
from event_lightning.nn.pose.snn_unet import SpikingConvBN, SpikingPoseUNet


class _SequencePoseModule(_PoseModule):
    """A model that maps a window of event bins to heatmaps at every step."""

    @abstractmethod
    def window(self, batch: dict[str, Any], n_steps: int | None = None) -> tuple[Tensor, Tensor | None]:
        """``(heatmaps [T, B, J, H, W], CNN heatmap at the window start or None)``."""

    def _sequence(self, batch: dict[str, Any], n_steps: int | None) -> Tensor:
        x_seq = batch["events"].transpose(0, 1)  # [B, T, ...] -> time-first [T, B, ...]
        return x_seq if n_steps is None else x_seq[:n_steps]

    def _labelled(self, batch: dict[str, Any], eval_steps: int | None = None) -> LabelledSteps:
        return LabelledSteps.of(batch["events"].shape[1], batch["landmarks"].shape[1], eval_steps)

    def _window_loss(self, heatmaps: Tensor, batch: dict[str, Any], labelled: LabelledSteps) -> Tensor:
        coords = batch["landmarks"][:, : labelled.count].transpose(0, 1)  # [L, B, J, 2]
        return self.heatmap_loss(heatmaps[labelled.steps], coords)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        labelled = self._labelled(batch)
        heatmaps, _ = self.window(batch)
        loss = self.training_loss(heatmaps, batch, labelled)
        pred = self.decode(heatmaps[labelled.steps]).transpose(0, 1)
        error = _batch_error(pred, batch["landmarks"][:, : labelled.count], self._scale(batch))
        self.log("train/mpjpe", error, prog_bar=True)
        return loss

    def training_loss(self, heatmaps: Tensor, batch: dict[str, Any], labelled: LabelledSteps) -> Tensor:
        loss = self._window_loss(heatmaps, batch, labelled)
        self.log("train/loss", loss, prog_bar=True, on_epoch=True, batch_size=len(batch["landmarks"]))
        return loss

    def _eval_step(self, batch: dict[str, Any], stage: str) -> Tensor:
        batch, views = _fold_views(batch)
        scale = self._scale(batch)
        labelled = self._labelled(batch, self.eval_steps)
        heatmaps, cnn_heatmap = self.window(batch, labelled.n_run)
        loss = self._window_loss(heatmaps, batch, labelled)
        self.log(f"{stage}/loss", loss, prog_bar=True, sync_dist=True)
        labels = batch["landmarks"][:, : labelled.count]
        pred = self.decode(heatmaps[labelled.steps]).transpose(0, 1)  # [B, L, J, 2]
        self._score(self.mpjpe[stage], pred, labels, scale)
        if cnn_heatmap is not None:
            held = self.decode(cnn_heatmap).unsqueeze(1).expand_as(labels)
            self._score(self.mpjpe_held[stage], held, labels, scale)
        if "label_3d" in batch:
            self._score_3d(self.mpjpe_3d[stage], pred, batch, views, batch["label_3d"][:, : labelled.count], scale)
        return loss

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
        return self.net.window(self._sequence(batch, n_steps))[0], None
