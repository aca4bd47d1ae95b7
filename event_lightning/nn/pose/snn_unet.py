"""The spiking pose UNet: 9 decay-input LIF layers, run layer by layer over a window.

Every spiking layer is a bias-free conv -> BatchNorm -> LIF. The network is evaluated layer by
layer over the whole window (``[T, B, ...]``): convolutions and resampling are stateless, so they
run once on ``T * B`` images, and only the LIF keeps a time loop. That gives the same values as
the reference's step-by-step loop. BatchNorm uses per-time-step batch statistics in training, so
its normalisation and running-average updates are those of the step-by-step reference (pitfall
13), computed for all steps at once (:func:`batchnorm_per_step`).

On the GPU: the LIF input currents and potentials are float32 under autocast (only the
convolutions run in bf16/fp16), the output layer runs in float32 (its maps are decoded by
argmax), and ``compile: true`` compiles the LIF step cell (:meth:`SpikingPoseUNet.compile_targets`),
whose graph does not depend on the window length.

Shapes for ``base_channels = c`` and ``H x W`` input (H, W divisible by 8)::

    static_conv  conv5        in -> c     @ H
    down1        conv5 s2     c  -> 2c    @ H/2
    down2        conv5 s2     2c -> 4c    @ H/4
    down3        conv5 s2     4c -> 8c    @ H/8
    res1         conv3        8c -> 8c    @ H/8
    res2         conv3 (+ down3 spikes)   @ H/8
    up1          cat(res2, down3) 16c, bilinear x2, conv5 -> 4c  @ H/4
    up2          cat(up1, down2)  8c,  bilinear x2, conv5 -> 2c  @ H/2
    up3          cat(up2, down1)  4c,  bilinear x2, conv5 -> c   @ H
    tail         cat(up3, static_conv) 2c, conv1x1 -> n_joints
                 "integrator": + BN + non-spiking leaky integrator (pure SNN, output = its potential)
                 "conv": bare 1x1 conv (the hybrid accumulates the output outside)
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from event_lightning.nn.pose.conv_chunks import ChunkedConv2d
from event_lightning.nn.pose.lif import DecayInputLIF, LIFParams, leaky_integrate
from event_lightning.nn.pose.precision import at_least_float32, autocast_off
from event_lightning.nn.pose.upsample_conv import Upsample2xConv2d

__all__ = [
    "SNN_LIF_LAYERS",
    "ChannelMatmulConv2d",
    "SNNOutput",
    "SpikingConvBN",
    "SpikingPoseUNet",
    "batchnorm_per_step",
]

SNN_LIF_LAYERS = ("static_conv", "down1", "down2", "down3", "res1", "res2", "up1", "up2", "up3")
"""The spiking layers, in forward order; keys of initial and final membrane potentials."""


def batchnorm_per_step(bn: nn.BatchNorm2d, x_seq: Tensor) -> Tensor:
    """BatchNorm of ``[T, B, C, H, W]`` with per-step batch statistics in training, in float32.

    In training every step is normalised with its own batch statistics and the running averages
    take one momentum update per step, as ``T`` calls of ``bn`` would; in evaluation the running
    statistics normalise every step. On an accelerator a plain ``BatchNorm2d`` does this for all
    steps at once (:func:`_batchnorm_steps_at_once`: one reduction instead of ``T`` launches). On
    the CPU, in training, ``bn`` is called step by step: its fused kernels per step are 2.5-4x
    faster there than the all-steps reduction over the strided (B, H, W) axes, forward and backward
    together (pose SNN, c=16, 64x64, T=10, B=2). Anything else (e.g. the ``SyncBatchNorm`` that
    ``sync_batchnorm`` puts in its place under DDP) is called step by step too.
    """
    x_seq = x_seq.to(at_least_float32(x_seq.dtype))  # LIF input currents: float32 under autocast too
    plain = type(bn) is nn.BatchNorm2d and bn.track_running_stats and bn.momentum is not None
    if bn.training and (not plain or x_seq.device.type == "cpu"):
        return torch.stack([bn(x) for x in x_seq])
    if plain:
        return _batchnorm_steps_at_once(bn, x_seq)
    return bn(x_seq.flatten(0, 1)).view_as(x_seq)


def _batchnorm_steps_at_once(bn: nn.BatchNorm2d, x_seq: Tensor) -> Tensor:
    """``bn`` applied to each step of ``[T, B, C, H, W]``: one scale and shift per step and channel.

    In training the statistics of step ``t`` are reductions over its (B, H, W), and the running
    averages get the ``T`` sequential momentum updates in closed form:
    ``r_T = (1 - m)^T r_0 + sum_t m (1 - m)^(T-1-t) s_t``, with the unbiased variance as ``s_t``
    for the running variance, as ``F.batch_norm`` does. The result is always a new ``[T, ...]``
    tensor (never a view of a ``[T * B, ...]`` one), so the compiled LIF cell that reads its steps
    sees one memory layout in training and evaluation.
    """
    if bn.training:
        var, mean = torch.var_mean(x_seq, dim=(1, 3, 4), correction=0)  # [T, C]
        _update_running_stats(bn, mean.detach(), var.detach(), x_seq[0].numel() // x_seq.shape[2])
    else:
        var, mean = bn.running_var[None], bn.running_mean[None]  # [1, C]
    scale = torch.rsqrt(var + bn.eps)
    if bn.affine:
        shift = bn.bias - mean * scale * bn.weight
        scale = scale * bn.weight
    else:
        shift = -mean * scale
    return x_seq * scale[:, None, :, None, None] + shift[:, None, :, None, None]


def _update_running_stats(bn: nn.BatchNorm2d, mean: Tensor, var: Tensor, count: int) -> None:
    """The ``T`` momentum updates of ``bn``'s running averages by per-step statistics ``[T, C]``.

    ``count`` is the number of values per channel and step (the unbiased variance uses it).
    """
    steps = mean.shape[0]
    keep = 1.0 - bn.momentum
    weights = bn.momentum * torch.pow(keep, torch.arange(steps - 1, -1, -1, device=mean.device, dtype=mean.dtype))
    with torch.no_grad():
        bn.running_mean.mul_(keep**steps).add_((weights[:, None] * mean).sum(0).to(bn.running_mean.dtype))
        unbiased = var * (count / max(count - 1, 1))
        bn.running_var.mul_(keep**steps).add_((weights[:, None] * unbiased).sum(0).to(bn.running_var.dtype))
        bn.num_batches_tracked.add_(steps)


_FEW_CHANNELS = 4
"""Input channels up to which a CPU convolution whose input needs a gradient runs channels-last
(see :meth:`SpikingConvBN._conv`)."""


def _per_image(fn, x_seq: Tensor) -> Tensor:
    """Apply a stateless image op to every step of ``[T, B, ...]`` at once."""
    y = fn(x_seq.flatten(0, 1))
    return y.view(*x_seq.shape[:2], *y.shape[1:])


class ChannelMatmulConv2d(nn.Conv2d):
    """A bias-free 1x1 ``nn.Conv2d`` computed as a channel matmul, ``[N, C_in, H, W] -> [N, C_out, H, W]``.

    Same parameters and result; on the CPU the matmul's backward is several times cheaper than
    oneDNN's convolution backward for the SNN tail (2c -> 13 channels at full resolution). It is a
    ``bmm`` with the weight expanded over the images: ``torch.matmul`` of a ``[C_out, C_in]`` matrix
    and ``[N, C_in, P]`` images transposes both ways around one big matmul (two full copies), 3.6x
    slower forward and backward together (pose SNN tail, c=16, 64x64, T=10, B=2).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 1, bias=False)

    def forward(self, *parts: Tensor) -> Tensor:
        """The convolution of the channel concatenation of ``parts [N, C_k, H, W]`` (``sum C_k =
        C_in``), one ``bmm`` per part: the concatenation (the largest tensor of a pose SNN step, and
        its gradient) is never built, so the step allocates no block large enough for glibc to map
        fresh pages for it at every step."""
        weights = self.weight.flatten(1).split([x.shape[1] for x in parts], dim=1)
        out = None
        for weight, x in zip(weights, parts, strict=True):
            images = weight.expand(x.shape[0], -1, -1)  # a view: no copy per image
            out = torch.bmm(images, x.flatten(2)) if out is None else torch.baddbmm(out, images, x.flatten(2))
        return out.unflatten(2, parts[0].shape[2:])


class SpikingConvBN(nn.Module):
    """Bias-free conv -> BatchNorm (per step) -> decay-input LIF, over ``[T, B, C, H, W]``.

    ``upsample``: the conv reads its input upsampled x2 (bilinear), folded into the convolution
    (:class:`~event_lightning.nn.pose.upsample_conv.Upsample2xConv2d`, stride 1).
    """

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, params: LIFParams, upsample: bool = False
    ) -> None:
        super().__init__()
        if upsample and stride != 1:
            raise ValueError("SpikingConvBN: an upsampling layer has stride 1")
        self.conv = (
            Upsample2xConv2d(c_in, c_out, kernel)
            if upsample
            else ChunkedConv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False)
        )
        self.bn = nn.BatchNorm2d(c_out)
        self.lif = DecayInputLIF(params)

    def currents(self, x_seq: Tensor) -> Tensor:
        """The LIF input currents ``[T, B, C_out, H', W']``."""
        return batchnorm_per_step(self.bn, _per_image(self._conv, x_seq))

    def _conv(self, x: Tensor) -> Tensor:
        if x.device.type == "cpu" and self.conv.in_channels <= _FEW_CHANNELS and x.requires_grad:
            # oneDNN's NCHW input gradient is slow with 2 input channels: channels-last, copies
            # included, 17.7-23.6 instead of 22-29 ms forward and backward (pose SNN first layer, 20
            # images of 64 x 64, one thread). Without an input gradient (the event counts the first
            # layer reads) NCHW is faster: 3.8-12.9 instead of 6.2-14.3 ms, the same runs.
            return self.conv(x.contiguous(memory_format=torch.channels_last)).contiguous()
        return self.conv(x)

    def forward(self, x_seq: Tensor, v0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(spikes [T, B, C_out, H', W'], v after the last step)``."""
        return self.lif(self.currents(x_seq), v0)


class SNNOutput(NamedTuple):
    """What :class:`SpikingPoseUNet` returns for one window."""

    out: Tensor
    """``[T, B, n_joints, H, W]``: tail conv outputs ("conv") or integrator potentials ("integrator")."""
    v_last: dict[str, Tensor]
    """Post-reset membrane potential of every layer of :data:`SNN_LIF_LAYERS` after the last step."""


class SpikingPoseUNet(nn.Module):
    """The SNN UNet of the hybrid pose method (see the module docstring for the layout).

    Args:
        in_channels: event channels per step (2 polarities).
        n_joints: output maps.
        base_channels: width ``c`` (32 in the reference).
        lif: neuron parameters shared by the 9 spiking layers (tau 2 pure, 3 in the hybrid).
        tail: ``"integrator"`` (pure SNN) or ``"conv"`` (hybrid residual output).
    """

    def __init__(
        self,
        in_channels: int = 2,
        n_joints: int = 13,
        base_channels: int = 32,
        lif: LIFParams | None = None,
        tail: str = "integrator",
    ) -> None:
        super().__init__()
        if tail not in ("integrator", "conv"):
            raise ValueError(f"SpikingPoseUNet.tail must be 'integrator' or 'conv', found {tail!r}")
        params = lif or LIFParams()
        c = base_channels
        self.lif_params, self.tail_kind, self.base_channels = params, tail, c
        self.static_conv = SpikingConvBN(in_channels, c, 5, 1, params)
        self.down1 = SpikingConvBN(c, 2 * c, 5, 2, params)
        self.down2 = SpikingConvBN(2 * c, 4 * c, 5, 2, params)
        self.down3 = SpikingConvBN(4 * c, 8 * c, 5, 2, params)
        self.res1 = SpikingConvBN(8 * c, 8 * c, 3, 1, params)
        self.res2 = SpikingConvBN(8 * c, 8 * c, 3, 1, params)
        self.up1 = SpikingConvBN(16 * c, 4 * c, 5, 1, params, upsample=True)
        self.up2 = SpikingConvBN(8 * c, 2 * c, 5, 1, params, upsample=True)
        self.up3 = SpikingConvBN(4 * c, c, 5, 1, params, upsample=True)
        self.tail = ChannelMatmulConv2d(2 * c, n_joints)
        self.tail_bn = nn.BatchNorm2d(n_joints) if tail == "integrator" else None

    def lif_channels(self) -> dict[str, tuple[int, int]]:
        """Per spiking layer: ``(channels, spatial downsampling factor)``."""
        c = self.base_channels
        return {
            "static_conv": (c, 1),
            "down1": (2 * c, 2),
            "down2": (4 * c, 4),
            "down3": (8 * c, 8),
            "res1": (8 * c, 8),
            "res2": (8 * c, 8),
            "up1": (4 * c, 4),
            "up2": (2 * c, 2),
            "up3": (c, 1),
        }

    def spiking_layers(self) -> dict[str, SpikingConvBN]:
        """The 9 spiking blocks by name (their ``conv`` and ``lif``), for monitors."""
        return {name: getattr(self, name) for name in SNN_LIF_LAYERS}

    def compile_targets(self) -> list[nn.Module]:
        """What ``compile: true`` compiles: the LIF step cell of every layer (one shared graph).

        The convolutions already run once per window on ``T * B`` images; compiling the whole
        window would unroll the time loops of 9 layers into the graph instead.
        """
        return [block.lif.cell for block in self.spiking_layers().values()]

    def forward(self, x_seq: Tensor, v0: dict[str, Tensor] | None = None) -> SNNOutput:
        """Run one window from reset state (or from the initial potentials ``v0``).

        Args:
            x_seq: ``[T, B, in_channels, H, W]`` event counts.
            v0: optional initial potentials per layer name (any subset of :data:`SNN_LIF_LAYERS`),
                each ``[B, C, H', W']``, applied before the first charge step.
        """
        v0 = v0 or {}
        v_last: dict[str, Tensor] = {}

        def run(name: str, currents: Tensor) -> Tensor:
            spikes, v_last[name] = getattr(self, name).lif(currents, v0.get(name))
            return spikes

        s_in = run("static_conv", self.static_conv.currents(x_seq))
        s1 = run("down1", self.down1.currents(s_in))
        s2 = run("down2", self.down2.currents(s1))
        s3 = run("down3", self.down3.currents(s2))
        r1 = run("res1", self.res1.currents(s3))
        r2 = run("res2", self.res2.currents(r1) + s3)
        u1 = run("up1", self.up1.currents(torch.cat([r2, s3], 2)))
        u2 = run("up2", self.up2.currents(torch.cat([u1, s2], 2)))
        u3 = run("up3", self.up3.currents(torch.cat([u2, s1], 2)))
        with autocast_off(x_seq.device.type):  # float32 maps: decoded by argmax
            out = self.tail(*(s.flatten(0, 1).to(at_least_float32(s.dtype)) for s in (u3, s_in)))
        out = out.view(*x_seq.shape[:2], *out.shape[1:])
        if self.tail_bn is not None:
            out = leaky_integrate(batchnorm_per_step(self.tail_bn, out), self.lif_params.tau)
        return SNNOutput(out, v_last)
