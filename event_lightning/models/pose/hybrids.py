"""The hybrids: a frozen pretrained CNN sets the state of an SNN or a ConvLSTM UNet every window
(config/pose_hybrid_cnn_snn*.yaml, config/pose_hybrid_cnn_rnn*.yaml)."""

from __future__ import annotations

import logging
from abc import abstractmethod
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from event_lightning.models.pose.base import LabelledSteps
from event_lightning.models.pose.sequence import _SequencePoseModule
from event_lightning.nn.pose.convlstm import RecurrentPoseUNet
from event_lightning.nn.pose.hybrid import HybridCNNRNN, HybridCNNSNN
from event_lightning.nn.pose.init import xavier_init
from event_lightning.nn.pose.lif import LIFParams
from event_lightning.nn.pose.snn_unet import SpikingConvBN, SpikingPoseUNet
from event_lightning.nn.pose.unet_cnn import PoseUNetCNN

log = logging.getLogger(__name__)


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


class _HybridModule(_SequencePoseModule):
    """A frozen pretrained CNN whose features set a recurrent network's state every window.

    Holds what the two hybrids share: attaching and initialising the network, loading the
    pretrained CNN (and recurrent network) once at ``setup``, the window, and which layers run
    densely. A subclass names its recurrent network (:attr:`recurrent`), the hyperparameter that
    holds that network's own checkpoint and whether the checkpoint must match it key for key.
    """

    net: HybridCNNSNN | HybridCNNRNN
    _recurrent_checkpoint: str
    _recurrent_strict: bool

    @property
    @abstractmethod
    def recurrent(self) -> nn.Module:
        """The recurrent network whose state the CNN sets."""

    def _attach(self, net: HybridCNNSNN | HybridCNNRNN, head: nn.Conv2d | None = None, head_div: float = 1.0) -> None:
        """Use ``net``; Xavier-initialise what is not pretrained (the recurrent network, the heads),
        dividing ``head``'s weights by ``head_div``."""
        self.net = net
        xavier_init(self.recurrent, head=head, head_div=head_div)
        xavier_init(net.heads)
        self._pretrained_loaded = False

    def setup(self, stage: str) -> None:
        self._load_pretrained(stage)

    def _load_pretrained(self, stage: str) -> None:
        if self._pretrained_loaded:
            return
        recurrent = self.recurrent
        paths = {"cnn_checkpoint": self.hparams.cnn_checkpoint, "recurrent": self.hparams[self._recurrent_checkpoint]}
        for name, path in paths.items():
            if path is None:
                continue
            if not Path(path).is_file() and stage != "fit":
                # validate/test normally restore the whole hybrid from its own checkpoint afterwards.
                log.warning("%s %s not found; relying on the checkpoint given to %s", name, path, stage)
                continue
            target = self.net.cnn if name == "cnn_checkpoint" else recurrent
            load_network_weights(target, path, strict=self._recurrent_strict if target is recurrent else True)
        if self.hparams.cnn_checkpoint is None:
            log.warning("hybrid pose model: no cnn_checkpoint given; the frozen CNN keeps its random weights")
        self._pretrained_loaded = True

    def dense_layers(self) -> list[nn.Module]:
        modules = [*self.net.cnn.modules(), *self.net.heads.modules()]
        return [m for m in modules if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]

    def window(self, batch: dict[str, Any], n_steps: int | None = None) -> tuple[Tensor, Tensor | None]:
        out = self.net(self._sequence(batch, n_steps), batch["cnn_input"])
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

    # the pure SNN's tail BatchNorm is not in the hybrid's bare tail, so its checkpoint loads non-strictly
    _recurrent_checkpoint, _recurrent_strict = "snn_checkpoint", False

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
        self._attach(HybridCNNSNN(cnn, snn, output_decay, state_init, residual_output))

    @property
    def recurrent(self) -> SpikingPoseUNet:
        return self.net.snn

    def _uses_membrane_potential_loss(self, batch: dict[str, Any]) -> bool:
        return self.net.state_init and self.hparams.mp_loss_weight != 0 and "cnn_input_next" in batch

    def window(self, batch: dict[str, Any], n_steps: int | None = None) -> tuple[Tensor, Tensor | None]:
        if not self.training:
            return super().window(batch, n_steps)
        # the membrane-potential loss needs the final potentials and the next frame's CNN features,
        # which the window's CNN call computes with its own frame
        next_frame = batch["cnn_input_next"] if self._uses_membrane_potential_loss(batch) else None
        out = self.net(self._sequence(batch, n_steps), batch["cnn_input"], next_frame)
        self._final_state, self._next_features = out.final_state, out.next_features
        return out.heatmaps, out.cnn_heatmap

    def training_loss(self, heatmaps: Tensor, batch: dict[str, Any], labelled: LabelledSteps) -> Tensor:
        out_loss = self._window_loss(heatmaps, batch, labelled)
        self.log("train/out_loss", out_loss)
        weight = self.hparams.mp_loss_weight
        if not self._uses_membrane_potential_loss(batch):
            self.log("train/loss", out_loss, prog_bar=True, on_epoch=True, batch_size=len(batch["landmarks"]))
            return out_loss
        target = self.net.initial_states(self._next_features)
        final, self._final_state, self._next_features = self._final_state, None, None
        mp_loss = torch.stack([F.mse_loss(final[name], target[name]) for name in target]).mean()
        loss = (1 - weight) * out_loss + weight * mp_loss
        self.log("train/mp_loss", mp_loss)
        self.log("train/loss", loss, prog_bar=True, on_epoch=True, batch_size=len(batch["landmarks"]))
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
        head_weight_div: division of the RNN's 32->13 prediction conv's initial weights (2500: the
            reference's ``init_weights_div_last_layer`` hits that conv in this hybrid; an
            ``rnn_checkpoint`` replaces them).
        lr: Adam learning rate (1e-4; batch 2).
    """

    _recurrent_checkpoint, _recurrent_strict = "rnn_checkpoint", True

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
        head_weight_div: float = 2500.0,
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
        self._attach(HybridCNNRNN(cnn, rnn, output_decay, state_init), head=rnn.pred[0], head_div=head_weight_div)

    @property
    def recurrent(self) -> RecurrentPoseUNet:
        return self.net.rnn
