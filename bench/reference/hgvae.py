"""The HG-VAE reference step, rebuilt from ``specs/hgvae.md`` (sections 1.2-1.9).

What makes the reference cost what it costs is kept as it is there: each DECOLLE LIF layer holds
its traces as state and is called once per time bin (synaptic trace, membrane trace from the
previous synaptic trace, conv/linear on the membrane trace, max-pool, Heaviside with the
fast-sigmoid surrogate), every forward first runs bin 0 once without gradient to allocate the
state, then bins 0..T-1 with gradient; the reconstruction target is two causal exponential
filters along time (``int(6 tau)`` taps each, normalised to sum 1, one bin of delay each) read at
index T, x50. One step is the three phases A (VAE + excitation), B (inhibition net on a detached
sample) and C (adversarial, second encoder pass), each followed by a step of all four optimisers
(Adamax for the encoder, Adam for heads + decoder, excitation and inhibition nets), then one more
excitation step, with torch >= 2 ``zero_grad`` (gradients set to None).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.reference.harness import ReferenceCase, ReferenceStep, copy_weights, logged_step_losses


class _FastSigmoidSpike(torch.autograd.Function):
    """``H(u > 0)``; backward ``1 / (1 + slope |u|)^2``."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, slope: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(u)
        ctx.slope = slope
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (u,) = ctx.saved_tensors
        return grad / (1.0 + ctx.slope * u.abs()) ** 2, None


class SteppedLIFLayer(nn.Module):
    """One DECOLLE LIF layer called once per time bin; its traces live on the module."""

    def __init__(self, base: nn.Conv2d | nn.Linear, alpha: float, beta: float, pool: int, slope: float) -> None:
        super().__init__()
        self.base, self.alpha, self.beta, self.pool, self.slope = base, alpha, beta, pool, slope
        self.q: torch.Tensor | None = None
        self.p: torch.Tensor | None = None

    def forward(self, s_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.q is None:
            self.q, self.p = torch.zeros_like(s_in), torch.zeros_like(s_in)
        q_previous = self.q
        self.q = self.beta * q_previous + (1.0 - self.beta) * s_in
        self.p = self.alpha * self.p + (1.0 - self.alpha) * q_previous
        u = self.base(self.p)
        if self.pool > 1:
            u = F.max_pool2d(u, self.pool)
        return _FastSigmoidSpike.apply(u, self.slope), u


class SteppedDecolleEncoder(nn.Module):
    """Conv LIF layers then a dense LIF layer, stepped bin by bin; returns the dense ``U`` at ``T - 1``."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        layers = []
        channels = config.input_shape[0]
        for i, (out, pool) in enumerate(zip(config.conv_channels, config.pool_sizes, strict=True)):
            conv = nn.Conv2d(channels, out, config.kernel_size, padding=config.kernel_size // 2)
            layers.append(
                SteppedLIFLayer(conv, config.decay("alpha", i), config.decay("beta", i), pool, config.surrogate_slope)
            )
            channels = out
        n = len(layers)
        dense = nn.Linear(config.flat_features, config.out_features)
        slope = config.surrogate_slope
        layers.append(SteppedLIFLayer(dense, config.decay("alpha", n), config.decay("beta", n), 1, slope))
        self.layers = nn.ModuleList(layers)

    def _step(self, x_t: torch.Tensor) -> torch.Tensor:
        spikes = x_t
        for layer in self.layers:
            if isinstance(layer.base, nn.Linear):
                spikes = spikes.flatten(1)
            spikes, u = layer(spikes)
        return u

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            layer.q = layer.p = None
        with torch.no_grad():
            self._step(x[0])  # allocates the state: bin 0 enters twice
        for layer in self.layers:
            layer.q, layer.p = layer.q.detach(), layer.p.detach()
        for x_t in x:
            u = self._step(x_t)
        return u


def _guide(in_features: int, classes: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_features, hidden),
        nn.BatchNorm1d(hidden),
        nn.LeakyReLU(0.2),
        nn.Linear(hidden, hidden),
        nn.BatchNorm1d(hidden),
        nn.LeakyReLU(0.2),
        nn.Linear(hidden, classes),
    )


def _decoder(dimz: int, ngf: int, channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(dimz, 8 * ngf),
        nn.Unflatten(1, (8 * ngf, 1, 1)),
        nn.ConvTranspose2d(8 * ngf, 8 * ngf, 4, 2, 0, bias=False),
        nn.ReLU(),
        nn.ConvTranspose2d(8 * ngf, 4 * ngf, 4, 2, 1, bias=False),
        nn.ReLU(),
        nn.ConvTranspose2d(4 * ngf, 2 * ngf, 4, 2, 1, bias=False),
        nn.ReLU(),
        nn.ConvTranspose2d(2 * ngf, channels, 4, 2, 1, bias=False),
        nn.ReLU(),
    )


def _causal_filter(x: torch.Tensor, decay: float) -> torch.Tensor:
    """``x [N, 1, L]`` through a normalised exponential kernel of ``int(6 tau)`` taps, one bin of delay
    (zero padding): ``y[n] = sum_j k[j] x[n - 1 - j]``; returns ``[N, 1, L + 1]``.

    Written as a product with the ``[L + 1, L]`` Toeplitz matrix of the kernel rather than a
    ``conv1d``: the same sums, and float64 (the agreement check) has no direct convolution on CPU,
    where unfolding ``[N, taps, L]`` would take tens of GB."""
    tau = 1.0 / (1.0 - decay)
    taps = torch.arange(int(6 * tau), dtype=x.dtype)
    kernel = torch.exp(-taps / tau)
    kernel = kernel / kernel.sum()
    length = x.shape[-1]
    lag = torch.arange(length + 1)[:, None] - 1 - torch.arange(length)[None, :]  # n - 1 - m
    valid = (lag >= 0) & (lag < len(kernel))
    toeplitz = torch.where(valid, kernel[lag.clamp(0, len(kernel) - 1)], torch.zeros((), dtype=x.dtype))
    return x @ toeplitz.T


def reference_target(frames: torch.Tensor, alpha: float, beta: float, scale: float = 50.0) -> torch.Tensor:
    """The time-surface target ``[B, P, H, W]`` of ``frames [T, B, P, H, W]``: the synaptic then the
    membrane filter per pixel, read at index ``T``, times ``scale``."""
    steps = frames.shape[0]
    series = frames.permute(1, 2, 3, 4, 0).reshape(-1, 1, steps)
    filtered = _causal_filter(_causal_filter(series, beta)[..., :steps], alpha)
    return scale * filtered[..., steps].reshape(frames.shape[1:])


class ReferenceHGVAE(nn.Module):
    """Encoder, heads, decoder, excitation and inhibition nets with the project's parameter order."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        h = model.hparams
        config = model.encoder_config
        self.num_guided = model.num_guided
        self.encoder = SteppedDecolleEncoder(config)
        self.mu_head = nn.Linear(config.out_features, h.dimz)
        self.logvar_head = nn.Linear(config.out_features, h.dimz)
        self.decoder = _decoder(h.dimz, h.ngf, config.input_shape[0])
        self.excite = _guide(self.num_guided, self.num_guided, h.classifier_hidden)
        self.inhibit = _guide(h.dimz - self.num_guided, self.num_guided, h.classifier_hidden)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = F.leaky_relu(self.encoder(x), 0.01)
        return self.mu_head(hidden), self.logvar_head(hidden)


def _sample(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


def _mlsm(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.multilabel_soft_margin_loss(logits, target, reduction="sum")


def build_reference_step(model: Any) -> ReferenceStep:
    """The reference network on a copy of ``model``'s weights, and its three-phase step."""
    h = model.hparams
    ref = ReferenceHGVAE(model)
    copy_weights([model.net, model.inhibit], [ref])
    opts = [
        torch.optim.Adamax(
            ref.encoder.parameters(), lr=model.learning_rates[0], betas=tuple(model.adamax_betas), eps=h.adamax_eps
        ),
        torch.optim.Adam(
            [*ref.mu_head.parameters(), *ref.logvar_head.parameters(), *ref.decoder.parameters()],
            lr=model.learning_rates[1],
        ),
        torch.optim.Adam(ref.excite.parameters(), lr=model.learning_rates[2]),
        torch.optim.Adam(ref.inhibit.parameters(), lr=model.learning_rates[3]),
    ]
    kl_weight = model.kl_weight()
    alpha, beta, k = model.target_alpha, model.target_beta, ref.num_guided

    def backward_and_step_all(loss: torch.Tensor) -> None:
        for opt in opts:
            opt.zero_grad()
        loss.backward()
        for opt in opts:
            opt.step()

    def step(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        dtype = next(ref.parameters()).dtype  # float32, or float64 for the agreement check
        frames = batch["frames"].to(dtype)
        onehot = F.one_hot(batch["target"], k).to(dtype)
        target = reference_target(frames, alpha, beta, h.target_scale)
        mu, logvar = ref.encode(frames)
        z = _sample(mu, logvar)
        kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)).mean()
        excite = h.class_weight * _mlsm(ref.excite(z[:, :k]), onehot)
        loss_a = F.mse_loss(ref.decoder(z), target) + kl_weight * kl + excite
        backward_and_step_all(loss_a)
        z_b = _sample(mu.detach(), logvar.detach())
        loss_b = h.class_weight * _mlsm(ref.inhibit(z_b[:, k:]), onehot)
        backward_and_step_all(loss_b)
        mu_c, logvar_c = ref.encode(frames)
        z_c = _sample(mu_c, logvar_c)
        loss_c = h.class_weight * _mlsm(ref.inhibit(z_c[:, k:]), torch.full_like(onehot, 0.5))
        backward_and_step_all(loss_c)
        opts[2].step()
        return {"A": loss_a.detach(), "B": loss_b.detach(), "C": loss_c.detach()}

    return step


PRESETS = {
    # the reference's N-MNIST and DVSGesture encoders (spec 1.3) with their windows (spec 2.1, 2.3)
    "N-MNIST": {"conv_channels": [12, 30], "pool_sizes": [2, 1], "alpha": 0.97, "beta": 0.92},
    "DVSGesture": {"conv_channels": [32, 64, 128], "pool_sizes": [2, 1, 2], "alpha": 0.99, "beta": 0.97},
}


def hgvae_batches(steps: int, batch: int, n: int = 2, density: float = 0.02, seed: int = 0) -> list[dict]:
    """``n`` batches of event counts ``[T, B, 2, 32, 32]`` (float32, as after the DataModule's
    transfer hook) and labels of 10 classes."""
    generator = torch.Generator().manual_seed(seed)
    return [
        {
            "frames": (torch.rand(steps, batch, 2, 32, 32, generator=generator) < density).float(),
            "target": torch.randint(0, 10, (batch,), generator=generator),
        }
        for _ in range(n)
    ]


def hgvae_model(preset: str) -> Any:
    """The project's HG-VAE with a reference encoder preset; LSUV off (a one-time initialisation,
    not part of a step; both sides start from the same weights)."""
    from event_lightning.models.hgvae import HybridGuidedVAE

    torch.manual_seed(0)
    return HybridGuidedVAE(num_classes=10, lsuv=False, **PRESETS[preset])


def hgvae_case(preset: str, steps: int, batch: int) -> ReferenceCase:
    """The HG-VAE comparison on the reference's ``preset`` encoder, ``steps`` bins, ``batch`` samples."""
    return ReferenceCase(
        name=f"HG-VAE {preset}",
        size=f"T={steps} B={batch} conv {PRESETS[preset]['conv_channels']}",
        peer="reference DECOLLE stepped per bin",
        model=hgvae_model(preset),
        batches=hgvae_batches(steps, batch),
        build_reference=build_reference_step,
        ours_losses=logged_step_losses({"A": "train/loss", "B": "train/inhibit", "C": "train/adversarial"}),
        note="3 phases, 4 optimisers; input density 2%",
        check_in_float64=True,  # phase C's loss follows two optimiser steps: see ReferenceCase
    )
