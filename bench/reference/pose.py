"""The pose SNN and hybrid CNN-SNN reference steps, rebuilt from ``specs/hybrid_pose.md`` (sections
2.1-2.4, 3, 4).

As in the reference: the whole spiking UNet is called once per time bin, every spiking layer a
bias-free conv, a BatchNorm2d (batch statistics of that bin) and a spikingjelly ``LIFNode``
(decay input, soft reset, ATan surrogate, reset not detached) holding its potential between
calls, reset before each window; the tail is a 1x1 conv, BatchNorm and a non-spiking leaky
integrator of the same tau. The target per labelled bin is a one-hot at the truncated joint pixel,
blurred with a normalised 11x11 Gaussian (sigma 2) over a reflect-padded image and divided by its
own peak; the loss is the MSE averaged over the bins, under Adam.

The hybrid: a frozen UNet CNN (biases, LeakyReLU 0.1, average-pool down, bilinear up) on the frame
at the window start gives a heatmap and features; nine state-initialiser heads turn the features
into the LIF layers' potentials, set before the first bin's charge step; the spiking UNet (tau 3)
ends in a bare 1x1 conv whose output accumulates on the decayed CNN heatmap,
``y_t = 0.8 y_{t-1} + o_t`` from ``y_{-1} = H``. The loss is ``0.95`` times the heatmap MSE plus
``0.05`` times the mean over the layers of the MSE between the potentials after the last bin and
the heads' states of the next window's CNN frame.
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
    """The SNN UNet (9 LIF layers), one bin per call: with ``integrator`` (the pure SNN) a BN +
    leaky-integrator tail whose potential is the output, else the hybrid's bare 1x1 conv."""

    def __init__(self, in_channels: int, n_joints: int, c: int, tau: float, integrator: bool = True) -> None:
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
        self.tail_bn = nn.BatchNorm2d(n_joints) if integrator else None
        self.out_v: torch.Tensor | float = 0.0

    def lif_layers(self) -> dict[str, SpikingBlock]:
        names = ("static_conv", "down1", "down2", "down3", "res1", "res2", "up1", "up2", "up3")
        return {name: getattr(self, name) for name in names}

    def new_window(self, v_init: dict[str, torch.Tensor] | None = None) -> None:
        """Reset every state; ``v_init``: potentials by layer, in place before the first charge step."""
        from spikingjelly.activation_based import functional

        functional.reset_net(self)
        self.out_v = 0.0
        for name, v in (v_init or {}).items():
            self.lif_layers()[name].lif.v = v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s_in = self.static_conv(x)
        s1 = self.down1(s_in)
        s2 = self.down2(s1)
        s3 = self.down3(s2)
        r2 = self.res2(self.res1(s3), extra=s3)
        u1 = self.up1(_up(torch.cat([r2, s3], 1)))
        u2 = self.up2(_up(torch.cat([u1, s2], 1)))
        u3 = self.up3(_up(torch.cat([u2, s1], 1)))
        out = self.tail(torch.cat([u3, s_in], 1))
        if self.tail_bn is None:
            return out
        self.out_v = self.out_v + (self.tail_bn(out) - self.out_v) / self.tau
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


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.1)


class ReferenceCNN(nn.Module):
    """The hybrid's UNet CNN (spec 2.1): 7x7 stem, five avg-pool down blocks, five bilinear up blocks
    with skips, a 3x3 head; every conv has a bias and all but the head a LeakyReLU(0.1)."""

    def __init__(self, in_channels: int, n_joints: int, c: int) -> None:
        super().__init__()
        self.stem = nn.ModuleList([nn.Conv2d(in_channels, c, 7, padding=3), nn.Conv2d(c, c, 7, padding=3)])
        widths = [c, 2 * c, 4 * c, 8 * c, 16 * c, 16 * c]
        kernels = [5, 3, 3, 3, 3]
        self.down = nn.ModuleList(
            nn.ModuleList([nn.Conv2d(a, b, k, padding=k // 2), nn.Conv2d(b, b, k, padding=k // 2)])
            for a, b, k in zip(widths[:-1], widths[1:], kernels, strict=True)
        )
        ups = [(16 * c, 16 * c), (16 * c, 8 * c), (8 * c, 4 * c), (4 * c, 2 * c), (2 * c, c)]
        self.up = nn.ModuleList(
            nn.ModuleList([nn.Conv2d(a, b, 3, padding=1), nn.Conv2d(2 * b, b, 3, padding=1)]) for a, b in ups
        )
        self.head = nn.Conv2d(c, n_joints, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Heatmap and the features the state heads read: stem, down1-3 and up1-5."""
        x = _lrelu(self.stem[1](_lrelu(self.stem[0](x))))
        skips = [x]
        for conv1, conv2 in self.down:
            x = _lrelu(conv2(_lrelu(conv1(F.avg_pool2d(x, 2)))))
            skips.append(x)
        features = {"stem": skips[0], "down1": skips[1], "down2": skips[2], "down3": skips[3]}
        for k, (conv1, conv2) in enumerate(self.up):
            x = _lrelu(conv2(torch.cat([_lrelu(conv1(_up(x))), skips[-2 - k]], 1)))
            features[f"up{k + 1}"] = x
        return self.head(x), features


class StateHead(nn.Module):
    """A state initialiser (spec 2.4): [bilinear x2] -> 1x1 conv -> BN -> LeakyReLU -> 1x1 conv -> BN."""

    def __init__(self, c_in: int, c_out: int, upsample: bool) -> None:
        super().__init__()
        self.upsample = upsample
        self.conv1, self.bn1 = nn.Conv2d(c_in, c_out, 1), nn.BatchNorm2d(c_out)
        self.conv2, self.bn2 = nn.Conv2d(c_out, c_out, 1), nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _up(x) if self.upsample else x
        return self.bn2(self.conv2(_lrelu(self.bn1(self.conv1(x)))))


# SNN layer -> (CNN feature, its channels and the SNN layer's channels in units of c, upsampled)
_STATE_SOURCES = {
    "static_conv": ("stem", 1, 1, False),
    "down1": ("down1", 2, 2, False),
    "down2": ("down2", 4, 4, False),
    "down3": ("down3", 8, 8, False),
    "res1": ("up1", 16, 8, True),
    "res2": ("up2", 8, 8, False),
    "up1": ("up3", 4, 4, False),
    "up2": ("up4", 2, 2, False),
    "up3": ("up5", 1, 1, False),
}


class SteppedHybrid(nn.Module):
    """The hybrid CNN-SNN (spec 2.4): frozen CNN at the window start, nine state heads, the SNN
    stepped per bin with a bare conv tail accumulated on the decayed CNN heatmap."""

    def __init__(self, cnn_in: int, cnn_c: int, in_channels: int, n_joints: int, c: int, tau: float) -> None:
        super().__init__()
        self.cnn = ReferenceCNN(cnn_in, n_joints, cnn_c)
        self.snn = SteppedSpikingUNet(in_channels, n_joints, c, tau, integrator=False)
        self.heads = nn.ModuleDict(
            {
                layer: StateHead(cnn_units * cnn_c, snn_units * c, upsample)
                for layer, (_, cnn_units, snn_units, upsample) in _STATE_SOURCES.items()
            }
        )
        self.cnn.requires_grad_(False)

    def states(self, x_cnn: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The frozen CNN's heatmap and the heads' potentials for the frame ``x_cnn``."""
        with torch.no_grad():
            heatmap, features = self.cnn(x_cnn)
        return heatmap, {layer: head(features[_STATE_SOURCES[layer][0]]) for layer, head in self.heads.items()}


def build_hybrid_reference_step(model: Any) -> ReferenceStep:
    """The stepped hybrid on a copy of ``model``'s weights (CNN, SNN, heads), and its Adam step."""
    h = model.hparams
    ref = SteppedHybrid(h.cnn_in_channels, h.cnn_base_channels, h.in_channels, h.n_joints, h.base_channels, h.tau)
    copy_weights([model.net], [ref])
    optimizer = torch.optim.Adam([p for p in ref.parameters() if p.requires_grad], lr=h.lr)

    def step(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        events, coords = batch["events"], batch["landmarks"]  # [B, T, P, H, W], [B, T, J, 2]
        ref.train()
        ref.cnn.eval()
        y, v_init = ref.states(batch["cnn_input"])
        ref.snn.new_window(v_init)
        losses = []
        for t in range(events.shape[1]):
            y = h.output_decay * y + ref.snn(events[:, t])
            losses.append(F.mse_loss(y, reference_heatmaps(coords[:, t], *y.shape[-2:], h.sigma)))
        out_loss = torch.stack(losses).mean()
        _, target = ref.states(batch["cnn_input_next"])
        finals = {name: layer.lif.v for name, layer in ref.snn.lif_layers().items()}
        mp_loss = torch.stack([F.mse_loss(finals[name], target[name]) for name in target]).mean()
        loss = (1 - h.mp_loss_weight) * out_loss + h.mp_loss_weight * mp_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": loss.detach(), "out_loss": out_loss.detach(), "mp_loss": mp_loss.detach()}

    return step


def pose_batches(
    batch: int, steps: int, side: int, n: int = 2, seed: int = 0, cnn_frames: bool = False
) -> list[dict[str, torch.Tensor]]:
    """``n`` DHP19-like sequence batches: event counts ``[B, T, 2, side, side]`` and one label per
    bin ``[B, T, 13, 2]`` (grid pixels, inside the grid); with ``cnn_frames`` the hybrid's 20-channel
    CNN frames at the window start and at the next window's start (``[B, 20, side, side]``)."""
    generator = torch.Generator().manual_seed(seed)

    def counts(*shape: int, rate: float = 0.3) -> torch.Tensor:
        return torch.poisson(torch.full(shape, rate), generator=generator)

    batches = []
    for _ in range(n):
        item = {
            "events": counts(batch, steps, 2, side, side),
            "landmarks": torch.rand(batch, steps, 13, 2, generator=generator) * (side - 1),
        }
        if cnn_frames:
            item["cnn_input"] = counts(batch, 20, side, side, rate=0.5)
            item["cnn_input_next"] = counts(batch, 20, side, side, rate=0.5)
        batches.append(item)
    return batches


POSE_WARMUP = 3
"""Untimed steps of the pose rows. After one, our next steps still grow the heap: the reference's
first step, between ours, takes its optimiser state and per-bin tensors from the memory our first
step freed, so our steps 1-3 page-fault 26k, 2-5k and 0-4k times (hybrid, one thread, thread time
about 0.6-1.5 s, 0.55-0.8 s and 0.5-0.75 s, where the steps after take 0.5 s with no faults); the
reference settles after its first step. Three warm-up steps time both sides in their steady state."""


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
        warmup=POSE_WARMUP,
    )


def pose_hybrid_case(batch: int, steps: int, side: int, base_channels: int) -> ReferenceCase:
    """The hybrid CNN-SNN comparison: ``batch`` windows of ``steps`` bins at ``side x side`` (a multiple
    of 32), CNN and SNN of width ``base_channels``; the CNN's weights are its random initial ones."""
    from event_lightning.models.pose import PoseHybridCNNSNN

    torch.manual_seed(0)
    model = PoseHybridCNNSNN(cnn_base_channels=base_channels, base_channels=base_channels, heatmap_border="reflect")
    return ReferenceCase(
        name="pose hybrid CNN-SNN (DHP19)",
        size=f"T={steps} B={batch} {side}x{side}, c={base_channels} (CNN and SNN)",
        peer="reference hybrid, SNN stepped per bin, spikingjelly LIFNode",
        model=model,
        batches=pose_batches(batch, steps, side, cnn_frames=True),
        build_reference=build_hybrid_reference_step,
        ours_losses=logged_step_losses({name: f"train/{name}" for name in ("loss", "out_loss", "mp_loss")}),
        note="Adam; frozen CNN run on two frames per window (start and next start, the membrane-potential loss)",
        warmup=POSE_WARMUP,
    )
