"""The Topographic VAE reference step, rebuilt from ``specs/tvae.md`` (sections 1-4).

As in the reference: the z and u encoders and the decoder are convolutions (a full-image conv,
then 1x1 convs; 1x1 transposed convs, then a full-image transposed conv and a sigmoid); the
grouper views u as ``(B, S, n_caps, cap_dim)``, moves the capsules to the batch axis, pads the
(time, capsule) plane circularly and applies a frozen ``ConvTranspose3d`` whose kernel is the band
``|delta_t - delta_c| <= n_off_diag``; the posteriors are ``torch.distributions.Normal`` (rsample,
analytic KL to N(0, I)) and the likelihood ``Bernoulli(probs=clamp(sigmoid(logits), 0, 1))``; the
loss is ``(sum -log p(x|t) + sum KL_z + sum KL_u) / (B * S)`` under SGD with momentum.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, Normal, kl_divergence

from bench.reference.harness import ReferenceCase, ReferenceStep, copy_weights, logged_step_losses


def _encoder(channels: int, size: int, dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, 3 * dim, size),
        nn.ReLU(),
        nn.Conv2d(3 * dim, 2 * dim, 1),
        nn.ReLU(),
        nn.Conv2d(2 * dim, 2 * dim, 1),
    )


def _decoder(channels: int, size: int, dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(dim, 2 * dim, 1),
        nn.ReLU(),
        nn.ConvTranspose2d(2 * dim, 3 * dim, 1),
        nn.ReLU(),
        nn.ConvTranspose2d(3 * dim, channels, size),
        nn.Sigmoid(),
    )


class ShiftingCapsuleGrouper(nn.Module):
    """``v = W * u^2`` by a circular pad and a frozen ``ConvTranspose3d`` over (time, capsule index)
    of each capsule (odd kernel sizes), then ``t = (z + mu) / sqrt(v + eps)``."""

    def __init__(self, n_caps: int, cap_dim: int, seq_len: int, kernel: int, n_off_diag: int, mu: float, eps: float):
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError("the bench's reference grouper covers odd kernel sizes (the Lpartial MNIST setting)")
        self.n_caps, self.cap_dim, self.seq_len, self.kernel, self.eps = n_caps, cap_dim, seq_len, kernel, eps
        self.conv = nn.ConvTranspose3d(
            1, 1, (kernel, kernel, 1), padding=(2 * (kernel // 2), 2 * (kernel // 2), 0), bias=False
        )
        offsets = torch.arange(kernel)
        band = ((offsets[:, None] - offsets[None, :]).abs() <= n_off_diag).float()
        with torch.no_grad():
            self.conv.weight.copy_(band[None, None, :, :, None])
        self.conv.weight.requires_grad_(False)
        self.mu = nn.Parameter(torch.full((1,), float(mu)))

    def forward(self, z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        n_seq = u.shape[0] // self.seq_len
        grid = (u**2).view(n_seq, self.seq_len, self.n_caps, self.cap_dim).transpose(1, 2)
        grid = grid.reshape(n_seq * self.n_caps, 1, self.seq_len, self.cap_dim, 1)
        pad = self.kernel // 2
        v = self.conv(F.pad(grid, (0, 0, pad, pad, pad, pad), mode="circular"))
        v = v.view(n_seq, self.n_caps, self.seq_len, self.cap_dim).transpose(1, 2).reshape(u.shape)
        return (z + self.mu) / torch.sqrt(v + self.eps)


def _posterior(encoder: nn.Module, x: torch.Tensor, dim: int) -> Normal:
    out = encoder(x).flatten(1)
    return Normal(out[:, :dim], torch.exp(0.5 * out[:, dim:]))


def build_reference_step(model: Any) -> ReferenceStep:
    """The reference TVAE on a copy of ``model``'s weights, and its SGD step."""
    h = model.hparams
    channels, size = h.image_channels, h.image_size
    dim = h.n_caps * h.cap_dim
    z_encoder, u_encoder = _encoder(channels, size, dim), _encoder(channels, size, dim)
    decoder = _decoder(channels, size, dim)
    grouper = ShiftingCapsuleGrouper(
        h.n_caps, h.cap_dim, h.n_time_steps, h.group_kernel[0], h.n_off_diag, h.mu_init, h.eps
    )
    net = model.net
    copy_weights([net.z_encoder, net.u_encoder, net.decoder], [z_encoder, u_encoder, decoder])
    with torch.no_grad():
        grouper.mu.copy_(net.grouper.mu)
    parameters = [grouper.mu, *z_encoder.parameters(), *u_encoder.parameters(), *decoder.parameters()]
    optimizer = torch.optim.SGD(parameters, lr=h.lr, momentum=h.momentum)
    prior = Normal(0.0, 1.0)

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch[0].flatten(0, 1)  # [B * S, C, H, W], sequence-major
        q_z, q_u = _posterior(z_encoder, x, dim), _posterior(u_encoder, x, dim)
        z, u = q_z.rsample(), q_u.rsample()
        probs = decoder(grouper(z, u)[:, :, None, None]).clamp(0, 1)
        log_px = Bernoulli(probs=probs, validate_args=False).log_prob(x).sum()  # continuous x, as in torch 1.x
        kl = kl_divergence(q_z, prior).sum() + kl_divergence(q_u, prior).sum()
        loss = (kl - log_px) / x.shape[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": loss.detach()}

    return step


def tvae_batches(
    batch: int, seq_len: int, size: int = 28, n: int = 2, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` batches of colour sequences ``[B, S, 3, size, size]`` in [0, 1] (a red stroke-like digit
    channel, as the reference's colour MNIST) and their labels ``[B, S]``."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        x = torch.zeros(batch, seq_len, 3, size, size)
        x[:, :, 0] = (torch.rand(batch, seq_len, size, size, generator=generator) < 0.2).float() * torch.rand(
            batch, seq_len, size, size, generator=generator
        )
        out.append((x, torch.randint(0, 10, (batch, 1), generator=generator).expand(batch, seq_len)))
    return out


def tvae_model(seq_len: int = 18, n_caps: int = 18, image_size: int = 28) -> Any:
    """The project's TVAE in the ``tvae_Lpartial_mnist`` setting (shifting 13x13 band, K = 3;
    ``n_caps`` capsules of 18 units, colour images of ``image_size``)."""
    from event_lightning.models.tvae import TopographicVAE

    torch.manual_seed(0)
    return TopographicVAE(
        n_time_steps=seq_len, n_caps=n_caps, group_kernel=[13, 13], n_off_diag=1, image_size=image_size
    )


def tvae_case(batch: int, seq_len: int = 18, n_caps: int = 18, image_size: int = 28) -> ReferenceCase:
    """The TVAE comparison: ``batch`` sequences of ``seq_len`` frames (smaller networks for tests)."""
    return ReferenceCase(
        name="TVAE Lpartial MNIST",
        size=f"B={batch} S={seq_len} 3x{image_size}x{image_size}, D={n_caps}x18",
        peer="reference convs + ConvTranspose3d grouper",
        model=tvae_model(seq_len, n_caps, image_size),
        batches=tvae_batches(batch, seq_len, image_size),
        build_reference=build_reference_step,
        ours_losses=logged_step_losses({"loss": "train/loss"}),
        note="SGD with momentum",
    )
