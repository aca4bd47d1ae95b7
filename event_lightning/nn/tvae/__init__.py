"""Topographic VAE networks (Keller & Welling 2021): plain torch.nn, importable without Lightning."""

from event_lightning.nn.tvae.grouper import (
    GROUPER_KINDS,
    CapsuleGrouper,
    Grouper,
    IdentityGrouper,
    TorusGrouper,
    build_grouper,
    circular_correlate2d,
    shifting_kernel,
    stationary_kernel,
    window_offsets,
)
from event_lightning.nn.tvae.model import TVAENet, TVAEOutput, importance_estimate
from event_lightning.nn.tvae.networks import (
    LOGIT_LIMIT,
    MLPBernoulliDecoder,
    MLPGaussianEncoder,
    bernoulli_nll,
    gaussian_kl_standard,
    gaussian_log_prob,
)

__all__ = [
    "GROUPER_KINDS",
    "LOGIT_LIMIT",
    "CapsuleGrouper",
    "Grouper",
    "IdentityGrouper",
    "MLPBernoulliDecoder",
    "MLPGaussianEncoder",
    "TVAENet",
    "TVAEOutput",
    "TorusGrouper",
    "bernoulli_nll",
    "build_grouper",
    "circular_correlate2d",
    "gaussian_kl_standard",
    "gaussian_log_prob",
    "importance_estimate",
    "shifting_kernel",
    "stationary_kernel",
    "window_offsets",
]
