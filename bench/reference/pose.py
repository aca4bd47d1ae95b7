"""The pose SNN reference step, rebuilt from ``specs/hybrid_pose.md`` (sections 2.2, 2.3, 3, 4).

As in the reference: the whole spiking UNet is called once per time bin, every spiking layer a
bias-free conv, a BatchNorm2d (batch statistics of that bin) and a spikingjelly ``LIFNode``
(decay input, soft reset, ATan surrogate, reset not detached) holding its potential between
calls, reset before each window; the tail is a 1x1 conv, BatchNorm and a non-spiking leaky
integrator of the same tau. The target per labelled bin is a one-hot at the truncated joint pixel,
blurred with a normalised 11x11 Gaussian (sigma 2) over a reflect-padded image and divided by its
own peak; the loss is the MSE averaged over the bins, under Adam.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.reference.harness import ReferenceCase, ReferenceStep, copy_weights, logged_step_losses


def _lif_node(tau: float) -> nn.Module:
    from spikingjelly.activation_based import neuron, surrogate

    return neuron.LIFNode(
        tau=tau,
        decay_input=True,
        v_threshold=1.0,
        v_reset=None,
        surrogate_function=surrogate.ATan(alpha=2.0),
        detach_reset=False,
        step_mode="s",
    )


class SpikingBlock(nn.Module):
    """conv (no bias) -> BatchNorm2d -> LIFNode, one bin per call; ``extra`` is added before the LIF."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, tau: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.lif = _lif_node(tau)

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        current = self.bn(self.conv(x))
        return self.lif(current if extra is None else current + extra)


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class SteppedSpikingUNet(nn.Module):
    """The pure SNN UNet (9 LIF layers, BN + leaky-integrator tail), one bin per call."""

    def __init__(self, in_channels: int, n_joints: int, c: int, tau: float) -> None:
        super().__init__()
        self.tau = tau
        self.static_conv = SpikingBlock(in_channels, c, 5, 1, tau)
        self.down1 = SpikingBlock(c, 2 * c, 5, 2, tau)
        self.down2 = SpikingBlock(2 * c, 4 * c, 5, 2, tau)
        self.down3 = SpikingBlock(4 * c, 8 * c, 5, 2, tau)
        self.res1 = SpikingBlock(8 * c, 8 * c, 3, 1, tau)
        self.res2 = SpikingBlock(8 * c, 8 * c, 3, 1, tau)
        self.up1 = SpikingBlock(16 * c, 4 * c, 5, 1, tau)
        self.up2 = SpikingBlock(8 * c, 2 * c, 5, 1, tau)
        self.up3 = SpikingBlock(4 * c, c, 5, 1, tau)
        self.tail = nn.Conv2d(2 * c, n_joints, 1, bias=False)
        self.tail_bn = nn.BatchNorm2d(n_joints)
        self.out_v: torch.Tensor | float = 0.0

    def new_window(self) -> None:
        from spikingjelly.activation_based import functional

        functional.reset_net(self)
        self.out_v = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s_in = self.static_conv(x)
        s1 = self.down1(s_in)
        s2 = self.down2(s1)
        s3 = self.down3(s2)
        r2 = self.res2(self.res1(s3), extra=s3)
        u1 = self.up1(_up(torch.cat([r2, s3], 1)))
        u2 = self.up2(_up(torch.cat([u1, s2], 1)))
        u3 = self.up3(_up(torch.cat([u2, s1], 1)))
        self.out_v = self.out_v + (self.tail_bn(self.tail(torch.cat([u3, s_in], 1))) - self.out_v) / self.tau
        return self.out_v


def reference_heatmaps(coords: torch.Tensor, height: int, width: int, sigma: float = 2.0) -> torch.Tensor:
    """``coords [..., J, 2]`` (x, y) -> ``[..., J, H, W]``: blurred one-hots, peak 1 (zero outside)."""
    flat = coords.reshape(-1, 2)
    pixel = torch.trunc(flat)
    inside = (pixel[:, 0] >= 0) & (pixel[:, 0] < width) & (pixel[:, 1] >= 0) & (pixel[:, 1] < height)
    maps = torch.zeros(flat.shape[0], height * width)
    rows = inside.nonzero()[:, 0]
    maps[rows, (pixel[rows, 1] * width + pixel[rows, 0]).long()] = 1.0
    size = int(((sigma - 0.8) / 0.3 + 1) * 2 + 1)
    half = (size - 1) * 0.5
    g = torch.exp(-0.5 * (torch.linspace(-half, half, size) / sigma) ** 2)
    g = g / g.sum()
    padded = F.pad(maps.view(-1, 1, height, width), (size // 2,) * 4, mode="reflect")
    blurred = F.conv2d(padded, (g[:, None] * g[None, :])[None, None])
    peak = blurred.amax(dim=(2, 3), keepdim=True)
    blurred = torch.where(peak > 0, blurred / peak.clamp(min=1e-30), 0.0)
    return blurred.view(*coords.shape[:-1], height, width)


def build_snn_reference_step(model: Any) -> ReferenceStep:
    """The stepped SNN UNet on a copy of ``model``'s weights, and its Adam step."""
    h = model.hparams
    ref = SteppedSpikingUNet(h.in_channels, h.n_joints, h.base_channels, h.tau)
    copy_weights([model.net], [ref])
    optimizer = torch.optim.Adam(ref.parameters(), lr=h.lr)

    def step(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        events, coords = batch["events"], batch["landmarks"]  # [B, T, P, H, W], [B, T, J, 2]
        ref.new_window()
        losses = []
        for t in range(events.shape[1]):
            out = ref(events[:, t])
            losses.append(F.mse_loss(out, reference_heatmaps(coords[:, t], *out.shape[-2:], h.sigma)))
        loss = torch.stack(losses).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": loss.detach()}

    return step


def pose_batches(batch: int, steps: int, side: int, n: int = 2, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """``n`` DHP19-like sequence batches: event counts ``[B, T, 2, side, side]`` and one label per
    bin ``[B, T, 13, 2]`` (grid pixels, inside the grid)."""
    generator = torch.Generator().manual_seed(seed)
    return [
        {
            "events": torch.poisson(torch.full((batch, steps, 2, side, side), 0.3), generator=generator),
            "landmarks": torch.rand(batch, steps, 13, 2, generator=generator) * (side - 1),
        }
        for _ in range(n)
    ]


def pose_snn_case(batch: int, steps: int, side: int, base_channels: int) -> ReferenceCase:
    """The pose SNN comparison: ``batch`` windows of ``steps`` bins at ``side x side``."""
    from event_lightning.models.pose import PoseSNN

    torch.manual_seed(0)
    model = PoseSNN(base_channels=base_channels, tau=2.0, lr=5e-5, heatmap_border="reflect")
    return ReferenceCase(
        name="pose SNN (DHP19)",
        size=f"T={steps} B={batch} {side}x{side}, c={base_channels}",
        peer="reference UNet stepped per bin, spikingjelly LIFNode",
        model=model,
        batches=pose_batches(batch, steps, side),
        build_reference=build_snn_reference_step,
        ours_losses=logged_step_losses({"loss": "train/loss"}),
        note="Adam",
    )
