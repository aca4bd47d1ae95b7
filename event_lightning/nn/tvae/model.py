"""The Topographic VAE network: z/u encoders, grouper, Bernoulli decoder, IS log-likelihood."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from event_lightning.nn.tvae.grouper import Grouper, build_grouper
from event_lightning.nn.tvae.networks import (
    MLPBernoulliDecoder,
    MLPGaussianEncoder,
    bernoulli_nll,
    gaussian_kl_standard,
    gaussian_log_prob,
)


@dataclass
class TVAEOutput:
    """One pass over N = B * S frames (sequence-major).

    z, t: [N, D]; u: [N, D] (zeros for the plain VAE); logits: [N, C, H, W];
    kl_z, kl_u: [N, D] analytic KLs to N(0, I) (kl_u zeros for the VAE);
    neg_log_px: [N, C, H, W] elementwise Bernoulli negative log-likelihood (nats).
    """

    z: Tensor
    u: Tensor
    t: Tensor
    logits: Tensor
    kl_z: Tensor
    kl_u: Tensor
    neg_log_px: Tensor

    def loss(self) -> Tensor:
        """The training loss: (sum BCE + sum KL_z + sum KL_u) / number of frames."""
        n_frames = self.z.shape[0]
        return (self.neg_log_px.sum() + self.kl_z.sum() + self.kl_u.sum()) / n_frames


def importance_estimate(log_weights: Tensor, subtract_log_k: bool = True) -> Tensor:
    """log (1/K) sum_k exp(log_weights[k]) over dim 0: [K, ...] -> [...].

    With ``subtract_log_k=False`` it is the reference's logsumexp, too high by log K.
    """
    estimate = torch.logsumexp(log_weights, dim=0)
    return estimate - math.log(log_weights.shape[0]) if subtract_log_k else estimate


class TVAENet(nn.Module):
    """Topographic VAE on images [N, C, H, W], N = B * seq_len frames of B whole sequences.

    ``grouper="none"`` gives the plain VAE (no u encoder, t = z).
    """

    def __init__(
        self,
        image_channels: int,
        image_size: int,
        n_caps: int,
        cap_dim: int,
        seq_len: int,
        grouper: str = "shifting",
        group_kernel: tuple[int, int] | list[int] = (13, 13),
        n_off_diag: int = 1,
        mu_init: float = 30.0,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        latent_dim = n_caps * cap_dim
        self.image_shape = (image_channels, image_size, image_size)
        self.grouper: Grouper = build_grouper(grouper, n_caps, cap_dim, seq_len, group_kernel, n_off_diag, mu_init, eps)
        self.z_encoder = MLPGaussianEncoder(image_channels, image_size, latent_dim)
        self.u_encoder = MLPGaussianEncoder(image_channels, image_size, latent_dim) if self.grouper.uses_u else None
        self.decoder = MLPBernoulliDecoder(latent_dim, image_channels, image_size)

    @property
    def latent_dim(self) -> int:
        return self.grouper.latent_dim

    def _check_images(self, x: Tensor) -> None:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(
                f"TVAENet expects images [N, {', '.join(map(str, self.image_shape))}], got {tuple(x.shape)}"
            )

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """Posterior parameters: (mean_z, logvar_z, mean_u, logvar_u), each [N, D] (u: None for the VAE)."""
        self._check_images(x)
        mean_z, logvar_z = self.z_encoder(x)
        if self.u_encoder is None:
            return mean_z, logvar_z, None, None
        mean_u, logvar_u = self.u_encoder(x)
        return mean_z, logvar_z, mean_u, logvar_u

    def forward(self, x: Tensor, sample: bool = True) -> TVAEOutput:
        """One reparameterised pass (``sample=False`` uses the posterior means) over frames
        ``[N, C, H, W]`` (N = B * seq_len, sequence-major) or sequences ``[B, seq_len, C, H, W]``.

        Sequences are what a compiled network should get: with B symbolic, N = B * seq_len is a
        whole number of sequences by construction and one graph serves every batch size.
        """
        if x.dim() == 5:
            x = x.flatten(0, 1)
        mean_z, logvar_z, mean_u, logvar_u = self.encode(x)
        z = mean_z + torch.exp(0.5 * logvar_z) * torch.randn_like(mean_z) if sample else mean_z
        kl_z = gaussian_kl_standard(mean_z, logvar_z)
        if mean_u is None:
            u, kl_u = torch.zeros_like(z), torch.zeros_like(kl_z)
            t = self.grouper(z)
        else:
            u = mean_u + torch.exp(0.5 * logvar_u) * torch.randn_like(mean_u) if sample else mean_u
            kl_u = gaussian_kl_standard(mean_u, logvar_u)
            t = self.grouper(z, u)
        logits = self.decoder(t)
        return TVAEOutput(z, u, t, logits, kl_z, kl_u, bernoulli_nll(logits, x))

    def group(self, z: Tensor, u: Tensor | None) -> Tensor:
        """t from latent samples [N, D]."""
        return self.grouper(z) if u is None or not self.grouper.uses_u else self.grouper(z, u)

    def decode(self, t: Tensor) -> Tensor:
        """Bernoulli means (probabilities) [N, C, H, W] for latents t [N, D]."""
        return torch.sigmoid(self.decoder(t))

    @torch.no_grad()
    def importance_log_likelihood(self, x: Tensor, n_samples: int = 10, subtract_log_k: bool = True) -> Tensor:
        """Importance-sampled log p(x) per frame, [N] (nats per image).

        log w_k = log p(x | t_k) + log p(z_k) + log p(u_k) - log q(z_k | x) - log q(u_k | x), each summed
        over all dims, with (z_k, u_k) drawn from q for all frames jointly (t couples the frames
        of a sequence); estimate = logsumexp_k log w_k - log K.
        """
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        mean_z, logvar_z, mean_u, logvar_u = self.encode(x)
        n, d = mean_z.shape

        def draw(mean: Tensor, logvar: Tensor) -> tuple[Tensor, Tensor]:
            sample = mean + torch.exp(0.5 * logvar) * torch.randn(
                (n_samples, n, d), dtype=mean.dtype, device=mean.device
            )
            log_ratio = gaussian_log_prob(sample) - gaussian_log_prob(sample, mean, logvar)
            return sample, log_ratio.sum(-1)

        z, log_weights = draw(mean_z, logvar_z)
        u = None
        if mean_u is not None:
            u, log_ratio_u = draw(mean_u, logvar_u)
            log_weights = log_weights + log_ratio_u
        # K blocks of N frames each hold whole sequences, so the grouper sees K * B sequences.
        t = self.group(z.reshape(n_samples * n, d), None if u is None else u.reshape(n_samples * n, d))
        logits = self.decoder(t).view(n_samples, *x.shape)
        log_px = -bernoulli_nll(logits, x.expand_as(logits)).flatten(2).sum(-1)
        return importance_estimate(log_px + log_weights, subtract_log_k)

    def roll_capsules(self, t: Tensor, shift: int) -> Tensor:
        """Roll every capsule of t [N, D] by ``shift`` along its capsule axis (torch.roll convention)."""
        caps = t.view(t.shape[0], self.grouper.n_caps, self.grouper.cap_dim)
        return torch.roll(caps, shifts=shift, dims=-1).reshape(t.shape)

    @torch.no_grad()
    def sample_prior(self, n_sequences: int, generator: torch.Generator | None = None) -> Tensor:
        """Bernoulli means of n_sequences * seq_len frames with z, u ~ N(0, I): [n * S, C, H, W]."""
        device = next(self.parameters()).device
        shape = (n_sequences * self.grouper.seq_len, self.latent_dim)
        z = torch.randn(shape, generator=generator, device=device)
        u = torch.randn(shape, generator=generator, device=device) if self.grouper.uses_u else None
        return self.decode(self.group(z, u))
