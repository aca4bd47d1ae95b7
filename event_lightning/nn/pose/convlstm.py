"""E2VID-style recurrent UNet with ConvLSTM encoders (the RNN baseline of the hybrid pose method).

Layout for ``base_channels = c`` and ``num_encoders = 3`` (H, W divisible by 8)::

    head      conv5 in -> c, ReLU (no norm)                      @ H
    encoderk  conv5 s2 + BN + ReLU, then ConvLSTM (3x3 gates)     2c @ H/2, 4c @ H/4, 8c @ H/8
    resblocks 2 x (conv3-BN-ReLU-conv3-BN, + input, ReLU)         8c @ H/8
    decoderk  ConvTranspose5 s2 (p2, op1) + BN + ReLU on (x + skip)  -> 4c, 2c, c
    pred      conv1x1 + BN on (x + head) -> n_joints; the final "activation" is the identity

Convs followed by BatchNorm have no bias (E2VID); the ConvLSTM gate conv has one.

:class:`RecurrentPoseUNet` is a step module: ``forward`` is one time step with every state
given, and :meth:`RecurrentPoseUNet.window` loops over time in Python. ``compile: true``
compiles the pointwise LSTM update (:class:`LSTMUpdate`), whose graph does not depend on the
window length. Under autocast the LSTM cell and hidden states stay float32 and the prediction
layer runs in float32; the convolutions run in bf16/fp16.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from event_lightning.nn.pose.precision import at_least_float32, in_float32

__all__ = ["ConvLSTMCell", "LSTMState", "LSTMUpdate", "RecurrentPoseUNet"]


class LSTMState(NamedTuple):
    """Hidden and cell state of one ConvLSTM, each ``[B, C, H, W]``."""

    hidden: Tensor
    cell: Tensor


class LSTMUpdate(nn.Module):
    """The pointwise part of a ConvLSTM step: gate pre-activations and the old cell -> the new state.

    ``forward(gates [B, 4, N], cell [B, 1, N]) -> (hidden, cell)``, each ``[B, 1, N]`` with
    ``N = C * H * W`` (the input, forget, output and candidate gates in that order along the second
    axis), computed in the cell's dtype (float32 under autocast: the gates come out of a bf16 conv).
    No parameters, the same graph for every encoder and every step: this is what ``compile: true``
    compiles in the RNNs.
    """

    def forward(self, gates: Tensor, cell: Tensor) -> LSTMState:
        gates = gates.to(torch.promote_types(gates.dtype, cell.dtype))
        gate_in, gate_forget, gate_out, candidate = gates.unbind(1)
        cell = torch.sigmoid(gate_forget) * cell[:, 0] + torch.sigmoid(gate_in) * torch.tanh(candidate)
        hidden = torch.sigmoid(gate_out) * torch.tanh(cell)
        return LSTMState(hidden.unsqueeze(1), cell.unsqueeze(1))


class ConvLSTMCell(nn.Module):
    """ConvLSTM: one conv over ``cat(x, h)`` gives the input, forget, output and candidate gates."""

    def __init__(self, input_channels: int, hidden_channels: int, kernel: int = 3) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.gates = nn.Conv2d(input_channels + hidden_channels, 4 * hidden_channels, kernel, padding=kernel // 2)
        self.update = LSTMUpdate()

    def forward(self, x: Tensor, state: LSTMState) -> LSTMState:
        """``x [B, C_in, H, W]`` and the previous state -> the new state (in the state's dtype)."""
        gates = self.gates(torch.cat([x, state.hidden], 1))
        # the update sees [B, 4, N] and [B, 1, N]: the batch and N dynamic, the 4 gates static, so
        # no size of one encoder's (C, H, W) is guarded and one graph serves every encoder
        gates, cell = gates.view(gates.shape[0], 4, -1), state.cell.reshape(gates.shape[0], 1, -1)
        for tensor in (gates, cell):
            torch._dynamo.maybe_mark_dynamic(tensor, 0)
            torch._dynamo.maybe_mark_dynamic(tensor, 2)
        hidden, cell = self.update(gates, cell)
        return LSTMState(hidden.view_as(state.cell), cell.view_as(state.cell))


def _conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + x)


class _Encoder(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = _conv_bn_relu(c_in, c_out, 5, 2)
        self.lstm = ConvLSTMCell(c_out, c_out, 3)

    def forward(self, x: Tensor, state: LSTMState) -> LSTMState:
        return self.lstm(self.conv(x), state)


class RecurrentPoseUNet(nn.Module):
    """E2VID-style recurrent UNet: one step ``[B, C_in, H, W]`` -> ``[B, n_joints, H, W]`` (``forward``),
    a window ``[T, B, C_in, H, W]`` -> ``[T, B, n_joints, H, W]`` (:meth:`window`).

    Args:
        in_channels: event channels per step.
        n_joints: output maps.
        base_channels: width of the head (32).
        num_encoders: ConvLSTM encoders (3).
        num_residual_blocks: residual blocks at the bottleneck (2).
    """

    def __init__(
        self,
        in_channels: int = 2,
        n_joints: int = 13,
        base_channels: int = 32,
        num_encoders: int = 3,
        num_residual_blocks: int = 2,
    ) -> None:
        super().__init__()
        c = base_channels
        self.head = nn.Sequential(nn.Conv2d(in_channels, c, 5, padding=2), nn.ReLU(inplace=True))
        widths = [c * 2 ** (k + 1) for k in range(num_encoders)]
        self.encoders = nn.ModuleList(_Encoder(w // 2, w) for w in widths)
        self.resblocks = nn.ModuleList(_ResidualBlock(widths[-1]) for _ in range(num_residual_blocks))
        self.decoders = nn.ModuleList(
            nn.Sequential(
                nn.ConvTranspose2d(w, w // 2, 5, stride=2, padding=2, output_padding=1, bias=False),
                nn.BatchNorm2d(w // 2),
                nn.ReLU(inplace=True),
            )
            for w in reversed(widths)
        )
        self.pred = nn.Sequential(nn.Conv2d(c, n_joints, 1, bias=False), nn.BatchNorm2d(n_joints))

    def hidden_channels(self) -> list[int]:
        """Channels of the ConvLSTM states, encoder by encoder."""
        return [encoder.lstm.hidden_channels for encoder in self.encoders]

    def compile_targets(self) -> list[nn.Module]:
        """What ``compile: true`` compiles: the pointwise LSTM update of every encoder (one shared graph).

        The convolutions run eagerly (cuDNN on a GPU); compiling the whole step would cost a
        UNet's compile time for the fusion of a few pointwise operations around them.
        """
        return [encoder.lstm.update for encoder in self.encoders]

    def zero_states(self, x: Tensor) -> list[LSTMState]:
        """Zero float32 states for inputs ``x [B, C_in, H, W]`` (encoder ``k`` at ``H / 2^(k+1)``).

        They require grad in grad mode, like every later state (which depends on the weights), so
        the compiled LSTM update sees one kind of state at every step and keeps a single training
        graph.
        """
        dtype, grad = at_least_float32(x.dtype), torch.is_grad_enabled()
        height, width, states = x.shape[-2], x.shape[-1], []
        for channels in self.hidden_channels():
            height, width = (height + 1) // 2, (width + 1) // 2  # conv5, stride 2, padding 2
            shape = (x.shape[0], channels, height, width)
            # two tensors: hidden and cell are never the same tensor at a later step either
            hidden, cell = (torch.zeros(shape, dtype=dtype, device=x.device, requires_grad=grad) for _ in range(2))
            states.append(LSTMState(hidden, cell))
        return states

    def forward(self, x: Tensor, states: list[LSTMState]) -> tuple[Tensor, list[LSTMState]]:
        """One time step: ``x [B, C_in, H, W]`` -> (maps ``[B, J, H, W]`` float32, new states)."""
        head = self.head(x)
        out, skips, new_states = head, [], []
        for encoder, state in zip(self.encoders, states, strict=True):
            state = encoder(out, state)
            out = state.hidden
            skips.append(out)
            new_states.append(state)
        for block in self.resblocks:
            out = block(out)
        for decoder, skip in zip(self.decoders, reversed(skips), strict=True):
            out = decoder(out + skip)
        return in_float32(self.pred, out + head), new_states

    def window(self, x_seq: Tensor, states: list[LSTMState] | None = None) -> tuple[Tensor, list[LSTMState]]:
        """Run one window; ``states`` are the encoders' initial states (``None`` = zeros).

        Returns ``(maps [T, B, J, H, W], final states)``.
        """
        states = list(states) if states is not None else self.zero_states(x_seq[0])
        outputs = []
        for x in x_seq:
            out, states = self(x, states)
            outputs.append(out)
        return torch.stack(outputs), states
