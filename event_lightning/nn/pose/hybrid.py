"""Hybrid networks: a frozen CNN initialises a recurrent network (SNN or ConvLSTM) once per window.

Timing of one window of T steps (hybrid_pose spec §0, §2.4)::

    CNN(frame ending at the window start) -> heatmap H, features
    heads(features)                      -> initial membrane potentials (or LSTM hidden states)
    step t = 0..T-1: recurrent network on event bin t -> o_t
    y_0 = d * stopgrad(H) + o_0,  y_t = d * y_{t-1} + o_t       (residual output, d = output_decay)

The CNN is frozen (no gradients, always in eval mode); the heads and the recurrent network train.
Nothing is carried between calls: each call is one window from reset state. In training the
hybrid CNN-SNN also takes the next window's frame, whose CNN features the membrane-potential loss
needs, and runs the CNN once on both frames.

Under autocast the states the heads produce and the output accumulation ``y_t`` are float32.
``compile: true`` compiles the recurrent network's pointwise step cell, which runs at every time
step; the CNN and the heads run once per window and stay eager (convolution-bound: compiling
them would cost a UNet's compile time for little).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from event_lightning.nn.pose.convlstm import LSTMState, RecurrentPoseUNet
from event_lightning.nn.pose.precision import in_float32
from event_lightning.nn.pose.snn_unet import SpikingPoseUNet
from event_lightning.nn.pose.traces import linear_trace
from event_lightning.nn.pose.unet_cnn import PoseUNetCNN

__all__ = [
    "SNN_STATE_SOURCES",
    "HybridCNNRNN",
    "HybridCNNSNN",
    "HybridOutput",
    "RNNStateHeads",
    "SNNStateHeads",
    "StateInitHead",
    "decaying_residual",
]

SNN_STATE_SOURCES = {
    "static_conv": "stem",  # v_in
    "down1": "down1",  # v_1
    "down2": "down2",  # v_2
    "down3": "down3",  # v_3
    "res1": "up1",  # v_4 (upsampled x2, 16c -> 8c)
    "res2": "up2",  # v_5
    "up1": "up3",  # v_6
    "up2": "up4",  # v_7
    "up3": "up5",  # v_8
}
"""SNN LIF layer -> the CNN feature its initial potential is computed from (spec §2.4 table)."""

_CNN_SCALE = {
    "stem": 1,
    "down1": 2,
    "down2": 4,
    "down3": 8,
    "up1": 16,
    "up2": 8,
    "up3": 4,
    "up4": 2,
    "up5": 1,
}


class StateInitHead(nn.Module):
    """``[bilinear x2] -> conv1x1 -> BN -> LeakyReLU(0.1) -> conv1x1 -> BN``: a CNN feature -> a state."""

    def __init__(self, c_in: int, c_out: int, upsample: bool) -> None:
        super().__init__()
        self.upsample = upsample
        self.conv1 = nn.Conv2d(c_in, c_out, 1)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 1)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = F.leaky_relu(self.bn1(self.conv1(x)), 0.1)
        return in_float32(self.bn2, self.conv2(x))  # a state: float32 under autocast


class SNNStateHeads(nn.ModuleDict):
    """The 9 state-initialiser heads of the hybrid CNN-SNN, by SNN layer; ``forward`` runs them all.

    Args:
        cnn: the dense network whose features the heads read (:data:`SNN_STATE_SOURCES`).
        snn: the spiking network whose layers they initialise.
    """

    def __init__(self, cnn: PoseUNetCNN, snn: SpikingPoseUNet) -> None:
        super().__init__()
        cnn_channels = cnn.feature_channels()
        for layer, (channels, scale) in snn.lif_channels().items():
            source = SNN_STATE_SOURCES[layer]
            upsample = _CNN_SCALE[source] // scale
            if upsample not in (1, 2):
                raise AssertionError(f"no head for {source} -> {layer}: scale ratio {upsample}")
            self[layer] = StateInitHead(cnn_channels[source], channels, upsample == 2)

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        """CNN features by name -> the initial potential of every SNN layer (float32)."""
        return {layer: head(features[SNN_STATE_SOURCES[layer]]) for layer, head in self.items()}


class RNNStateHeads(nn.ModuleList):
    """One state-initialiser head per ConvLSTM encoder: CNN ``down{k+1}`` -> encoder ``k``'s hidden state."""

    def __init__(self, cnn: PoseUNetCNN, rnn: RecurrentPoseUNet) -> None:
        cnn_channels = cnn.feature_channels()
        super().__init__(
            StateInitHead(cnn_channels[f"down{k + 1}"], hidden, upsample=False)
            for k, hidden in enumerate(rnn.hidden_channels())
        )

    def forward(self, features: dict[str, Tensor]) -> list[Tensor]:
        """CNN features by name -> the initial hidden state of every encoder (float32)."""
        return [head(features[f"down{k + 1}"]) for k, head in enumerate(self)]


def decaying_residual(init: Tensor, increments: Tensor, decay: float) -> Tensor:
    """``y_t = decay * y_{t-1} + o_t`` with ``y_{-1} = init``, as one matmul over time (float32).

    Shapes: ``init [B, ...]``, ``increments [T, B, ...]`` -> ``[T, B, ...]``.
    """
    return linear_trace(increments, decay, 1.0, init)


class HybridOutput(NamedTuple):
    """One window of a hybrid network."""

    heatmaps: Tensor
    """``[T, B, J, H, W]`` predictions y_t."""
    cnn_heatmap: Tensor
    """``[B, J, H, W]`` the CNN's prediction at the window start (detached)."""
    final_state: dict[str, Tensor]
    """SNN: post-reset potential per LIF layer after the last step; RNN: hidden state per encoder."""
    next_features: dict[str, Tensor] | None = None
    """SNN given the next window's frame: the frozen CNN's features of it (the membrane-potential
    loss's target), from the same CNN call as the window's own frame."""


class _FrozenCNNMixin(nn.Module):
    cnn: PoseUNetCNN

    def _freeze_cnn(self) -> None:
        self.cnn.requires_grad_(False)
        self.cnn.eval()

    def train(self, mode: bool = True) -> _FrozenCNNMixin:  # the frozen CNN always stays in eval mode
        super().train(mode)
        self.cnn.eval()
        return self

    def run_cnn(self, x_cnn: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Frozen CNN: ``[B, C_in, H, W]`` -> (heatmap, features), without a graph."""
        with torch.no_grad():
            heatmap, features = self.cnn(x_cnn, return_features=True)
        return heatmap.detach(), features

    def run_cnn_frames(self, *frames: Tensor) -> list[tuple[Tensor, dict[str, Tensor]]]:
        """:meth:`run_cnn` of each ``[B, C_in, H, W]`` frame, as one call on their concatenation.

        The frozen CNN has no batch statistics, so each image gets what its own call would give; one
        call on ``2B`` images is faster than two on ``B`` (the low-resolution layers are bound by
        their weights: 44.5 -> 41.7 ms for the hybrid bench's two frames, CPU, one thread).
        """
        heatmap, features = self.run_cnn(torch.cat(frames))
        sizes = [len(frame) for frame in frames]
        split = {name: feature.split(sizes) for name, feature in features.items()}
        heatmaps = heatmap.split(sizes)
        return [(part, {name: parts[k] for name, parts in split.items()}) for k, part in enumerate(heatmaps)]


class HybridCNNSNN(_FrozenCNNMixin):
    """CNN-initialised SNN with a decaying residual output.

    Args:
        cnn: the pretrained dense network (frozen here).
        snn: the spiking UNet; ``tail="conv"`` with ``residual_output``, ``"integrator"`` without.
        output_decay: ``d`` of the residual accumulation (0.8; 0.9 for the 200 Hz variant).
        state_init: set the LIF potentials from CNN features at the window start; ``False`` is the
            "residual output without state init" ablation (potentials start at 0).
        residual_output: accumulate the SNN outputs on the decayed CNN heatmap; ``False`` is the
            "state init without residual" ablation (the SNN's integrator tail is the prediction).
    """

    def __init__(
        self,
        cnn: PoseUNetCNN,
        snn: SpikingPoseUNet,
        output_decay: float = 0.8,
        state_init: bool = True,
        residual_output: bool = True,
    ) -> None:
        super().__init__()
        if not (state_init or residual_output):
            raise ValueError("HybridCNNSNN needs state_init or residual_output (else it is the plain SNN)")
        expected_tail = "conv" if residual_output else "integrator"
        if snn.tail_kind != expected_tail:
            raise ValueError(
                f"HybridCNNSNN(residual_output={residual_output}) needs an SNN with tail={expected_tail!r}; "
                f"found {snn.tail_kind!r}"
            )
        self.cnn, self.snn = cnn, snn
        self.output_decay, self.state_init, self.residual_output = output_decay, state_init, residual_output
        self._freeze_cnn()
        self.heads = SNNStateHeads(cnn, snn) if state_init else nn.ModuleDict()

    def compile_targets(self) -> list[nn.Module]:
        """What ``compile: true`` compiles: the SNN's LIF step cell (see the module docstring)."""
        return self.snn.compile_targets()

    def initial_states(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        """The 9 initial potentials from CNN features (keys of :data:`SNN_LIF_LAYERS`)."""
        return self.heads(features)

    def cnn_states(self, x_cnn: Tensor) -> dict[str, Tensor]:
        """Initial potentials the CNN frame ``x_cnn`` would give (the membrane-potential loss target)."""
        return self.initial_states(self.run_cnn(x_cnn)[1])

    def forward(self, x_seq: Tensor, x_cnn: Tensor, x_cnn_next: Tensor | None = None) -> HybridOutput:
        """``x_seq [T, B, 2, H, W]`` event bins, ``x_cnn [B, C_cnn, H, W]`` frame at the window start;
        ``x_cnn_next``: the next window's frame, whose CNN features come back in ``next_features``."""
        next_features = None
        if x_cnn_next is None:
            cnn_heatmap, features = self.run_cnn(x_cnn)
        else:
            (cnn_heatmap, features), (_, next_features) = self.run_cnn_frames(x_cnn, x_cnn_next)
        v0 = self.initial_states(features) if self.state_init else None
        snn = self.snn(x_seq, v0)
        if self.residual_output:
            heatmaps = decaying_residual(cnn_heatmap, snn.out, self.output_decay)
        else:
            heatmaps = snn.out
        return HybridOutput(heatmaps, cnn_heatmap, snn.v_last, next_features)


class HybridCNNRNN(_FrozenCNNMixin):
    """CNN-initialised ConvLSTM UNet: CNN down1..down3 features -> LSTM hidden states (cells 0).

    Args:
        cnn: the pretrained dense network (frozen here).
        rnn: the recurrent UNet; its encoder k state comes from CNN ``down{k+1}``.
        output_decay: ``d`` of the residual accumulation on the CNN heatmap.
        state_init: set the hidden states from the CNN (``False``: zero states, residual only).
    """

    def __init__(
        self, cnn: PoseUNetCNN, rnn: RecurrentPoseUNet, output_decay: float = 0.8, state_init: bool = True
    ) -> None:
        super().__init__()
        self.cnn, self.rnn, self.output_decay, self.state_init = cnn, rnn, output_decay, state_init
        self._freeze_cnn()
        self.heads = RNNStateHeads(cnn, rnn) if state_init else nn.ModuleList()

    def compile_targets(self) -> list[nn.Module]:
        """What ``compile: true`` compiles: the RNN's pointwise LSTM update (see the module docstring)."""
        return self.rnn.compile_targets()

    def forward(self, x_seq: Tensor, x_cnn: Tensor) -> HybridOutput:
        """``x_seq [T, B, 2, H, W]`` event bins, ``x_cnn [B, C_cnn, H, W]`` frame at the window start."""
        cnn_heatmap, features = self.run_cnn(x_cnn)
        states: list[LSTMState] | None = None
        if self.state_init:
            # zero cells that require grad like every later cell: one graph for the compiled step
            grad = torch.is_grad_enabled()
            states = [LSTMState(h, torch.zeros_like(h, requires_grad=grad)) for h in self.heads(features)]
        out, final = self.rnn.window(x_seq, states)
        heatmaps = decaying_residual(cnn_heatmap, out, self.output_decay)
        return HybridOutput(heatmaps, cnn_heatmap, {f"encoder{k}": s.hidden for k, s in enumerate(final)})
