"""Networks of the Hybrid Guided VAE: spiking encoder, Gaussian heads, decoder, guide classifiers.

"Hybrid": a DECOLLE spiking encoder (:mod:`event_lightning.nn.decolle`, BPTT over all steps) whose
dense-layer membrane potential at the last step feeds conventional (non-spiking) parts::

    x [T, B, 2, 32, 32] -> encoder -> U [B, 128] -> leaky_relu -> mu, logvar [B, dimz]
    z = mu + exp(logvar / 2) * eps;  decoder(z) -> [B, 2, 32, 32]
    excitation net(z[:, :K]) -> K logits   (the guided part predicts the class)
    inhibition net(z[:, K:]) -> K logits   (adversary: the unguided part must not)

Everything here is plain torch (no Lightning); the losses and the three training phases live in
:mod:`event_lightning.models.hgvae`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from event_lightning.nn.decolle import DecolleEncoder, DecolleEncoderConfig

__all__ = [
    "ENCODER_PRESETS",
    "Decoder",
    "GuideClassifier",
    "HGVAEOutput",
    "HybridGuidedVAENet",
    "LSUV_RULES",
    "LSUVReport",
    "encoder_preset",
    "guided_split",
    "kl_divergence",
    "lsuv_init",
    "reparameterize",
]

log = logging.getLogger(__name__)

LOGVAR_INIT_SCALE = 1e-16
"""The reference multiplies the logvar head's weights and bias by this: sigma starts at 1."""

ENCODER_PRESETS: dict[str, DecolleEncoderConfig] = {
    # DVSGesture: alpha .99 / beta .97 (tau_m = 100, tau_s = 33 ms at 1-ms bins); ~1.31 M parameters.
    "gestures": DecolleEncoderConfig((2, 32, 32), (32, 64, 128), (2, 1, 2), 5, 128, 0.99, 0.97),
    # Lighting variant: four conv layers, alpha .97 / beta .92.
    "lighting": DecolleEncoderConfig((2, 32, 32), (32, 64, 64, 128), (2, 1, 2, 1), 5, 128, 0.97, 0.92),
    # N-MNIST: 2 -> 12 (pool 2) -> 30, dense 7680 -> 128.
    "nmnist": DecolleEncoderConfig((2, 32, 32), (12, 30), (2, 1), 5, 128, 0.97, 0.92),
}


def encoder_preset(name: str) -> DecolleEncoderConfig:
    """One of the reference encoder shapes: ``gestures``, ``lighting`` or ``nmnist``."""
    if name not in ENCODER_PRESETS:
        raise KeyError(f"unknown HG-VAE encoder preset {name!r}; choose one of {sorted(ENCODER_PRESETS)}")
    return ENCODER_PRESETS[name]


class Decoder(nn.Module):
    """``z [B, dimz]`` -> ``[B, out_channels, 32, 32]``, non-negative (final ReLU).

    ``Linear(dimz -> 8 ngf)``, reshape to ``8 ngf x 1 x 1``, then four bias-free transposed convs
    (kernel 4, stride 2, padding 0/1/1/1) with ``8 ngf -> 8 ngf -> 4 ngf -> 2 ngf -> out_channels``
    channels: 1 -> 4 -> 8 -> 16 -> 32 pixels, ReLU after each.
    """

    def __init__(self, dimz: int = 100, ngf: int = 16, out_channels: int = 2) -> None:
        super().__init__()
        self.fc = nn.Linear(dimz, 8 * ngf)
        widths = [8 * ngf, 8 * ngf, 4 * ngf, 2 * ngf, out_channels]
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=0 if i == 0 else 1, bias=False), nn.ReLU()]
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.fc(z)[:, :, None, None])


class GuideClassifier(nn.Module):
    """MLP ``in -> h -> h -> num_classes`` with BatchNorm1d and LeakyReLU(0.2) between (Kaiming-uniform).

    The excitation net reads ``z[:, :K]``, the inhibition net ``z[:, K:]``.
    """

    def __init__(self, in_features: int, num_classes: int, hidden: int = 100, n_hidden: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(n_hidden):
            layers += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(0.2)]
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        self.model = nn.Sequential(*layers)
        for module in self.model:
            if isinstance(module, nn.Linear):
                nn.init.kaiming_uniform_(module.weight, nonlinearity="leaky_relu")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z)


class HGVAEOutput(NamedTuple):
    """One forward pass: ``mu``, ``logvar``, sampled ``z`` [B, dimz], ``recon`` [B, 2, H, W],
    ``excite_logits`` [B, K]."""

    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor
    recon: torch.Tensor
    excite_logits: torch.Tensor


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``z = mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)``."""
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, sigma^2) || N(0, I))`` summed over latent dims, averaged over the batch."""
    return (-0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(dim=1)).mean()


def guided_split(z: torch.Tensor, num_guided: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z[:, :K], z[:, K:])``: the guided and the unguided part."""
    return z[:, :num_guided], z[:, num_guided:]


class HybridGuidedVAENet(nn.Module):
    """Encoder, heads, decoder and excitation net of the HG-VAE (the inhibition net is separate).

    Args:
        encoder: the DECOLLE encoder's shape.
        num_guided: ``K``, the number of guided latent dims (= number of classes of the guide).
        dimz: latent size.
        classifier_hidden: width of the excitation net.
        ngf: decoder width unit.
    """

    def __init__(
        self,
        encoder: DecolleEncoderConfig,
        num_guided: int,
        dimz: int = 100,
        classifier_hidden: int = 100,
        ngf: int = 16,
    ) -> None:
        super().__init__()
        if not 0 < num_guided < dimz:
            raise ValueError(f"HybridGuidedVAENet: need 0 < num_guided ({num_guided}) < dimz ({dimz})")
        channels, height, width = encoder.input_shape
        if (height, width) != (32, 32):
            raise ValueError(
                f"HybridGuidedVAENet: the decoder produces 32x32 frames; encoder input is {height}x{width}"
            )
        self.num_guided, self.dimz = num_guided, dimz
        self.encoder = DecolleEncoder(encoder)
        self.mu_head = nn.Linear(encoder.out_features, dimz)
        self.logvar_head = nn.Linear(encoder.out_features, dimz)
        with torch.no_grad():
            self.logvar_head.weight.mul_(LOGVAR_INIT_SCALE)
            self.logvar_head.bias.mul_(LOGVAR_INIT_SCALE)
        self.decoder = Decoder(dimz, ngf, channels)
        self.excite = GuideClassifier(num_guided, num_guided, classifier_hidden)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [T, B, C, 32, 32]`` (counts, any dtype) -> ``(mu, logvar)`` each ``[B, dimz]``."""
        # A compiled encoder gets one graph for every batch size: the last, smaller validation
        # batch must not recompile it (no effect in eager mode).
        torch._dynamo.maybe_mark_dynamic(x, 1)
        hidden = F.leaky_relu(self.encoder(x), 0.01)
        return self.mu_head(hidden), self.logvar_head(hidden)

    def forward(self, x: torch.Tensor) -> HGVAEOutput:
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar)
        return HGVAEOutput(mu, logvar, z, self.decoder(z), self.excite(z[:, : self.num_guided]))


LSUV_RULES = ("reference", "recheck")
"""Stopping rules of :func:`lsuv_init`: the reference's, or this project's re-checking one."""


@dataclass(frozen=True)
class LSUVReport:
    """What :func:`lsuv_init` did: passes run, whether every layer met the mean criterion, and the
    per-layer variance and mean of ``U`` at the last step measured in the last pass (under the
    ``reference`` rule, before that pass's variance rescale); ``silent`` lists layers whose ``U``
    had (near) zero variance, whose weights were left unscaled instead of divided by zero."""

    iterations: int
    converged: bool
    variances: tuple[float, ...]
    means: tuple[float, ...]
    silent: tuple[int, ...]


def _reference_statistics_input(encoder: DecolleEncoder, x: torch.Tensor) -> torch.Tensor:
    """``x [T, B, ...]`` with frame 0 repeated so that the encoder sees it three times, as in the
    reference's statistics pass (its state-allocating step, one extra step on frame 0, then steps
    ``0..T-1``): ``[T + 1, B, ...]`` with the warm-up step, ``[T + 2, B, ...]`` without."""
    repeats = 2 - int(encoder.config.warmup_first_step)
    return torch.cat([x[:1].expand(repeats, *x.shape[1:]), x])


@torch.no_grad()
def lsuv_init(
    encoder: DecolleEncoder,
    x: torch.Tensor,
    *,
    rule: str = "recheck",
    target_variance: float = 1.0,
    variance_tolerance: float = 0.1,
    target_mean: float = -0.1,
    mean_tolerance: float = 0.2,
    bias_step: float = 0.5,
    max_iterations: int = 30,
    min_variance: float = 1e-8,
) -> LSUVReport:
    """Layer-sequential unit-variance initialisation (Mishkin & Matas) of ``encoder`` on ``x`` ``[T, B, C, H, W]``.

    Biases are zeroed and weights made orthogonal; then each pass runs the encoder and, for each
    layer with ``v``, ``m`` the variance and mean of its pooled ``U`` at the last step (all layers
    measured in the same run): if ``|v - target_variance| > variance_tolerance`` the weights are
    divided by ``sqrt(v)``; if ``|m - target_mean| > mean_tolerance`` ``bias_step * m`` is subtracted
    from the bias. The rules differ in when they stop:

    * ``"reference"`` (decolle's ``init_LSUV`` as vendored by the reference): a pass applies its
      updates and then stops if every layer's mean met the criterion, so the variance rescale of the
      last pass is never re-checked (with means near the target from the start: one pass, zero
      biases). The statistics come from a run that sees frame 0 three times (the reference's
      ``process_output``) and use the population variance (``np.var``).
    * ``"recheck"`` (this project's): every pass after the first re-measures before updating and
      stops once every mean meets the criterion, so the last rescale is checked and may move the
      biases (2-6 passes seen); the statistics come from the encoder's own forward (frame 0 twice with
      the warm-up step) with the sample variance.

    Both stop after ``max_iterations`` passes at most (the reference loops until the means meet).
    A layer with ``v < min_variance`` (it sees no input spikes) keeps its weights: the reference
    divided by zero there.
    """
    if rule not in LSUV_RULES:
        raise ValueError(f"lsuv_init: rule must be one of {LSUV_RULES}, found {rule!r}")
    reference = rule == "reference"
    for layer in encoder.layers:
        nn.init.orthogonal_(layer.base_layer.weight)
        nn.init.zeros_(layer.base_layer.bias)
    statistics_input = _reference_statistics_input(encoder, x) if reference else x
    variances: list[float] = []
    means: list[float] = []
    silent: set[int] = set()
    converged = False
    iteration = 0
    for iteration in range(1, max_iterations + 1):
        readouts = encoder.membrane_at_last_step(statistics_input, all_layers=True)
        variances = [float(u.var(unbiased=not reference)) for u in readouts]
        means = [float(u.mean()) for u in readouts]
        converged = all(abs(m - target_mean) <= mean_tolerance for m in means)
        if converged and not reference and iteration > 1:
            break
        for i, (layer, v, m) in enumerate(zip(encoder.layers, variances, means, strict=True)):
            if not math.isfinite(v) or v < min_variance:
                silent.add(i)
            elif abs(v - target_variance) > variance_tolerance:
                layer.base_layer.weight.div_(math.sqrt(v))
            if abs(m - target_mean) > mean_tolerance:
                layer.base_layer.bias.sub_(bias_step * m)
        if converged and reference:
            break
    if not converged:
        log.warning("LSUV did not meet the mean criterion in %d passes (means %s)", max_iterations, means)
    if silent:
        log.warning("LSUV: layer(s) %s had zero membrane variance on the init batch (no input spikes)", sorted(silent))
    return LSUVReport(iteration, converged, tuple(variances), tuple(means), tuple(sorted(silent)))
