"""The dense pose CNN: a SuperSloMo-style UNet, stacked histogram -> joint heatmaps.

Shapes for ``base_channels = c`` and an ``H x W`` input (H, W divisible by 32)::

    stem   2x conv7            c    @ H
    down1  avgpool, 2x conv5   2c   @ H/2
    down2  avgpool, 2x conv3   4c   @ H/4
    down3                      8c   @ H/8
    down4                      16c  @ H/16
    down5                      16c  @ H/32
    up1    bilinear x2, conv3, cat(down4), conv3   16c @ H/16
    up2    ... cat(down3)                           8c @ H/8
    up3    ... cat(down2)                           4c @ H/4
    up4    ... cat(down1)                           2c @ H/2
    up5    ... cat(stem)                            c  @ H
    head   conv3 c -> n_joints (linear)

Every conv has a bias and is followed by LeakyReLU(0.1), except the head. No normalisation.
With c = 32, 20 input channels and 256 x 256 this is about 22.6 GMAC per inference. Under
autocast the head runs in float32 (its maps are decoded by argmax), the rest in bf16/fp16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from event_lightning.nn.pose.precision import in_float32

__all__ = ["CNN_FEATURES", "PoseUNetCNN"]

CNN_FEATURES = ("stem", "down1", "down2", "down3", "down4", "down5", "up1", "up2", "up3", "up4", "up5")
"""Names of the intermediate features :meth:`PoseUNetCNN.forward` returns with ``return_features``."""


def _lrelu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, 0.1)


class _Down(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv2d(c_out, c_out, kernel, padding=kernel // 2)

    def forward(self, x: Tensor) -> Tensor:
        x = F.avg_pool2d(x, 2)
        return _lrelu(self.conv2(_lrelu(self.conv1(x))))


class _Up(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv2d(2 * c_out, c_out, 3, padding=1)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = _lrelu(self.conv1(x))
        return _lrelu(self.conv2(torch.cat([x, skip], 1)))


class PoseUNetCNN(nn.Module):
    """UNet CNN: ``[B, in_channels, H, W]`` -> ``[B, n_joints, H, W]`` heatmaps.

    Args:
        in_channels: input channels (20 = 10 bins x 2 polarities, polarity-major).
        n_joints: output heatmaps (13 DHP19 joints).
        base_channels: width ``c`` of the stem (32 in the reference).
    """

    def __init__(self, in_channels: int = 20, n_joints: int = 13, base_channels: int = 32) -> None:
        super().__init__()
        c = base_channels
        self.in_channels, self.n_joints, self.base_channels = in_channels, n_joints, c
        self.stem1 = nn.Conv2d(in_channels, c, 7, padding=3)
        self.stem2 = nn.Conv2d(c, c, 7, padding=3)
        self.down1 = _Down(c, 2 * c, 5)
        self.down2 = _Down(2 * c, 4 * c, 3)
        self.down3 = _Down(4 * c, 8 * c, 3)
        self.down4 = _Down(8 * c, 16 * c, 3)
        self.down5 = _Down(16 * c, 16 * c, 3)
        self.up1 = _Up(16 * c, 16 * c)
        self.up2 = _Up(16 * c, 8 * c)
        self.up3 = _Up(8 * c, 4 * c)
        self.up4 = _Up(4 * c, 2 * c)
        self.up5 = _Up(2 * c, c)
        self.head = nn.Conv2d(c, n_joints, 3, padding=1)

    def compile_targets(self) -> list[nn.Module]:
        """What ``compile: true`` compiles: the whole network (it has no time loop)."""
        return [self]

    def feature_channels(self) -> dict[str, int]:
        """Channels of every entry of :data:`CNN_FEATURES`."""
        c = self.base_channels
        widths = (1, 2, 4, 8, 16, 16, 16, 8, 4, 2, 1)
        return {name: w * c for name, w in zip(CNN_FEATURES, widths, strict=True)}

    def _stem1(self, x: Tensor) -> Tensor:
        if x.device.type == "cpu" and not torch.is_grad_enabled():
            # inference (the hybrids' frozen CNN, evaluation): oneDNN's channels-last kernel for the
            # 20 input channels, copies included, 4.95 instead of 7.2 ms (4 x 64 x 64, c=16) and 81
            # instead of 144 ms (8 x 128 x 128, c=32), one thread
            return self.stem1(x.contiguous(memory_format=torch.channels_last)).contiguous()
        return self.stem1(x)

    def forward(self, x: Tensor, return_features: bool = False) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        """``x [B, C_in, H, W]`` -> heatmaps ``[B, J, H, W]`` (and the feature dict if asked)."""
        stem = _lrelu(self.stem2(_lrelu(self._stem1(x))))
        d1 = self.down1(stem)
        d2 = self.down2(d1)
        d3 = self.down3(d2)
        d4 = self.down4(d3)
        d5 = self.down5(d4)
        u1 = self.up1(d5, d4)
        u2 = self.up2(u1, d3)
        u3 = self.up3(u2, d2)
        u4 = self.up4(u3, d1)
        u5 = self.up5(u4, stem)
        out = in_float32(self.head, u5)  # heatmaps: float32 under autocast
        if not return_features:
            return out
        features = dict(zip(CNN_FEATURES, (stem, d1, d2, d3, d4, d5, u1, u2, u3, u4, u5), strict=True))
        return out, features
