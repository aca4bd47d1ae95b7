"""Encoders and decoder of the Topographic VAE: 3-layer MLPs written as convolutions.

The first encoder layer (and the last decoder layer) is a convolution whose kernel covers the
whole image, so the networks are MLPs whose weights keep the image layout, as in the reference.
Under autocast their matrix products run in bf16 / fp16 and their outputs (posterior parameters,
logits) come back as float32.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Bernoulli(probs=sigmoid(l)) in torch clamps probs to [eps, 1 - eps]: the same as clamping logits.
_FLOAT32_EPS = torch.finfo(torch.float32).eps
LOGIT_LIMIT = math.log((1.0 - _FLOAT32_EPS) / _FLOAT32_EPS)
_LOG_2PI = math.log(2.0 * math.pi)


def at_least_float32(x: Tensor) -> Tensor:
    """``x`` widened to float32 if autocast made it bf16 / fp16; float32 and float64 pass unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


class FullImageConv2d(nn.Conv2d):
    """A Conv2d whose kernel covers the whole input image: [N, C, k, k] -> [N, out, 1, 1].

    Computed as one matrix product (same parameters and result as the convolution, several
    times faster on CPUs).
    """

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != tuple(self.kernel_size):
            raise ValueError(f"expected images of size {tuple(self.kernel_size)}, got {tuple(x.shape[-2:])}")
        return F.linear(x.flatten(1), self.weight.flatten(1), self.bias)[:, :, None, None]


class PointwiseConv2d(nn.Conv2d):
    """A 1x1 Conv2d on [N, C, 1, 1] latents, computed as a matrix product."""

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x.flatten(1), self.weight.flatten(1), self.bias)[:, :, None, None]


class PointwiseConvTranspose2d(nn.ConvTranspose2d):
    """A 1x1 ConvTranspose2d on [N, C, 1, 1] latents, computed as a matrix product."""

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        return F.linear(x.flatten(1), self.weight.flatten(1).t(), self.bias)[:, :, None, None]


class FullImageConvTranspose2d(nn.ConvTranspose2d):
    """A ConvTranspose2d from [N, C, 1, 1] to a whole image [N, out, k, k], as a matrix product."""

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        out_channels, (height, width) = self.out_channels, self.kernel_size
        bias = None if self.bias is None else self.bias.repeat_interleave(height * width)
        return F.linear(x.flatten(1), self.weight.flatten(1).t(), bias).view(-1, out_channels, height, width)


class MLPGaussianEncoder(nn.Module):
    """Image [N, C, H, W] (H == W == image_size) -> posterior mean and log-variance, each [N, D].

    Widths C*H*W -> 3D -> 2D -> 2D (the last layer holds D means then D log-variances).
    """

    def __init__(self, in_channels: int, image_size: int, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.layers = nn.Sequential(
            FullImageConv2d(in_channels, 3 * latent_dim, kernel_size=image_size),
            nn.ReLU(),
            PointwiseConv2d(3 * latent_dim, 2 * latent_dim, kernel_size=1),
            nn.ReLU(),
            PointwiseConv2d(2 * latent_dim, 2 * latent_dim, kernel_size=1),
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        # float32 also under autocast: sampling, the KL and the grouper need the precision.
        out = at_least_float32(self.layers(x).flatten(1))
        return out[:, : self.latent_dim], out[:, self.latent_dim :]


class MLPBernoulliDecoder(nn.Module):
    """Latent t [N, D] -> Bernoulli logits [N, C, image_size, image_size]; widths D -> 2D -> 3D -> C*H*W."""

    def __init__(self, latent_dim: int, out_channels: int, image_size: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            PointwiseConvTranspose2d(latent_dim, 2 * latent_dim, kernel_size=1),
            nn.ReLU(),
            PointwiseConvTranspose2d(2 * latent_dim, 3 * latent_dim, kernel_size=1),
            nn.ReLU(),
            FullImageConvTranspose2d(3 * latent_dim, out_channels, kernel_size=image_size),
        )

    def forward(self, t: Tensor) -> Tensor:
        # float32 logits also under autocast: the summed Bernoulli likelihood needs the precision.
        return at_least_float32(self.layers(t[:, :, None, None]))


def bernoulli_nll(logits: Tensor, x: Tensor) -> Tensor:
    """Elementwise -log Bernoulli(x; sigmoid(logits)) for x in [0, 1] (continuous targets allowed).

    Logits are clamped to +-LOGIT_LIMIT (about 15.9), which is what the reference's
    clamp(sigmoid(.), 0, 1) followed by torch's Bernoulli(probs=...) computes.
    """
    return F.binary_cross_entropy_with_logits(logits.clamp(-LOGIT_LIMIT, LOGIT_LIMIT), x, reduction="none")


def gaussian_log_prob(x: Tensor, mean: Tensor | float = 0.0, logvar: Tensor | float = 0.0) -> Tensor:
    """Elementwise log N(x; mean, exp(logvar))."""
    # A number stays a number: a tensor made from it would be a host-to-device copy in every step.
    inverse_variance = torch.exp(-logvar) if isinstance(logvar, Tensor) else math.exp(-logvar)
    return -0.5 * (_LOG_2PI + logvar + (x - mean) ** 2 * inverse_variance)


def gaussian_kl_standard(mean: Tensor, logvar: Tensor) -> Tensor:
    """Elementwise KL(N(mean, exp(logvar)) || N(0, 1))."""
    return 0.5 * (mean**2 + torch.exp(logvar) - 1.0 - logvar)
