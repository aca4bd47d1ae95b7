"""The pose CNN: one 20-channel stacked histogram -> 13 joint heatmaps (config/pose_cnn*.yaml)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from event_lightning.models.pose.base import LabelledSteps, _batch_error, _fold_views, _PoseModule
from event_lightning.nn.pose.init import xavier_init
from event_lightning.nn.pose.unet_cnn import PoseUNetCNN


class PoseCNN(_PoseModule):
    """The UNet CNN on 20-channel constant-count stacked histograms (one frame -> 13 heatmaps).

    Args:
        in_channels: channels of the CNN frame (2 x cnn_bins).
        n_joints: heatmaps.
        base_channels: UNet width (32).
        lr: Adam learning rate (1e-4; batch 8 in the data config).
        sigma: heatmap Gaussian sigma in grid pixels (2).
        heatmap_border: ``"reflect"`` (reference) or ``"zeros"`` (see ``render_heatmaps``).
        head_weight_div: the head's Xavier weights are divided by this (1: the reference's CNN trainer
            uses plain Xavier; its /2500 rule only reaches the CNN inside the hybrids, whose CNN
            weights are then replaced by the pretrained ones).
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
        head_weight_div: float = 1.0,
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
        torch._dynamo.maybe_mark_dynamic(cnn_input, 0)  # compiled: one graph for every batch size
        return self.net(cnn_input)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        heatmaps = self(batch["cnn_input"])
        loss = self.heatmap_loss(heatmaps, batch["cnn_landmarks"])
        pred = self.decode(heatmaps)
        self.log("train/loss", loss, prog_bar=True, on_epoch=True, batch_size=len(batch["cnn_landmarks"]))
        self.log("train/mpjpe", _batch_error(pred, batch["cnn_landmarks"], self._scale(batch)), prog_bar=True)
        return loss

    def _eval_step(self, batch: dict[str, Any], stage: str) -> Tensor:
        batch, views = _fold_views(batch)
        scale = self._scale(batch)
        heatmaps = self(batch["cnn_input"])
        loss = self.heatmap_loss(heatmaps, batch["cnn_landmarks"])
        self.log(f"{stage}/loss", loss, prog_bar=True, sync_dist=True)
        pred = self.decode(heatmaps)
        self._score(self.mpjpe[stage], pred.unsqueeze(1), batch["cnn_landmarks"].unsqueeze(1), scale)
        if "landmarks" in batch:
            n_labels = batch["landmarks"].shape[1]
            labels = batch["landmarks"][:, : LabelledSteps.of(n_labels, n_labels, self.eval_steps).count]
            self._score(self.mpjpe_held[stage], pred.unsqueeze(1).expand_as(labels), labels, scale)
        if "cnn_label_3d" in batch:
            self._score_3d(self.mpjpe_3d[stage], pred.unsqueeze(1), batch, views, batch["cnn_label_3d"][:, None], scale)
        return loss

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Tensor]:
        batch, views = _fold_views(batch)
        out = self._predictions(self.decode(self(batch["cnn_input"])).unsqueeze(1), batch, views)
        # one estimate per window: drop the length-1 step axis
        for key in ("joints_2d", "joints_3d"):
            if key in out:
                out[key] = out[key].squeeze(-3)
        return out
