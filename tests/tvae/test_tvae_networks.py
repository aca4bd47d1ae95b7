"""TVAE networks: layer widths, loss, and the importance-sampled log-likelihood against exact values."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from event_lightning.nn.tvae import TVAENet, bernoulli_nll, gaussian_log_prob, importance_estimate
from event_lightning.nn.tvae.networks import (
    FullImageConv2d,
    FullImageConvTranspose2d,
    PointwiseConv2d,
    PointwiseConvTranspose2d,
)


def layer_widths(net: TVAENet) -> tuple[list[int], list[int]]:
    enc = [m.weight for m in net.z_encoder.layers if isinstance(m, nn.Conv2d)]
    dec = [m.weight for m in net.decoder.layers if isinstance(m, nn.ConvTranspose2d)]
    enc_widths = [enc[0][0].numel()] + [w.shape[0] for w in enc]
    dec_widths = [dec[0].shape[0]] + [w.shape[1] * w.shape[2] * w.shape[3] for w in dec]
    return enc_widths, dec_widths


@pytest.mark.parametrize(
    "channels,size,n_caps,cap_dim,grouper,enc,dec",
    [
        (3, 28, 18, 18, "shifting", [2352, 972, 648, 648], [324, 648, 972, 2352]),
        (1, 28, 1, 324, "torus2d", [784, 972, 648, 648], [324, 648, 972, 784]),
        (1, 64, 15, 15, "shifting", [4096, 675, 450, 450], [225, 450, 675, 4096]),
    ],
)
def test_layer_widths_match_the_reference(channels, size, n_caps, cap_dim, grouper, enc, dec) -> None:
    seq_len = 1 if grouper == "torus2d" else cap_dim
    net = TVAENet(channels, size, n_caps, cap_dim, seq_len, grouper=grouper, group_kernel=(5, 5))
    assert layer_widths(net) == (enc, dec)
    assert net.u_encoder is not None


def test_vae_has_no_u_encoder_and_zero_kl_u() -> None:
    net = TVAENet(1, 8, 2, 3, 3, grouper="none")
    assert net.u_encoder is None
    out = net(torch.rand(6, 1, 8, 8))
    assert torch.equal(out.t, out.z) and float(out.kl_u.abs().sum()) == 0.0


@pytest.mark.parametrize(
    "fast,plain,args,shape",
    [
        (FullImageConv2d, nn.Conv2d, (3, 12, 5), (4, 3, 5, 5)),
        (PointwiseConv2d, nn.Conv2d, (6, 7, 1), (4, 6, 1, 1)),
        (PointwiseConvTranspose2d, nn.ConvTranspose2d, (6, 7, 1), (4, 6, 1, 1)),
        (FullImageConvTranspose2d, nn.ConvTranspose2d, (6, 3, 5), (4, 6, 1, 1)),
    ],
)
def test_matrix_product_layers_equal_the_convolutions(fast, plain, args, shape) -> None:
    torch.manual_seed(0)
    a, b = fast(*args), plain(*args)
    b.load_state_dict(a.state_dict())
    x = torch.randn(shape)
    torch.testing.assert_close(a(x), b(x), rtol=1e-5, atol=1e-6)


def test_loss_is_summed_bce_plus_kls_per_frame() -> None:
    torch.manual_seed(0)
    net = TVAENet(3, 6, 2, 4, 4, grouper="shifting", group_kernel=(3, 3))
    x = torch.rand(8, 3, 6, 6)  # continuous targets, as rotated / hue-shifted images are
    out = net(x)
    # The reference: Bernoulli(probs=clamp(sigmoid(logits), 0, 1)).log_prob(x).
    reference_nll = -torch.distributions.Bernoulli(
        probs=torch.sigmoid(out.logits).clamp(0, 1), validate_args=False
    ).log_prob(x)
    torch.testing.assert_close(out.neg_log_px, reference_nll, rtol=1e-4, atol=1e-4)
    expected = (reference_nll.sum() + out.kl_z.sum() + out.kl_u.sum()) / 8
    torch.testing.assert_close(out.loss(), expected, rtol=1e-5, atol=1e-3)
    saturated = bernoulli_nll(torch.tensor([100.0]), torch.tensor([0.0]))
    assert math.isclose(float(saturated), -math.log(torch.finfo(torch.float32).eps), rel_tol=1e-4)


def test_importance_estimate_is_exact_for_linear_gaussian() -> None:
    """p(z) = N(0, I), p(x|z) = N(Az + b, s^2 I): log p(x) = log N(x; b, A A^T + s^2 I)."""
    gen = torch.Generator().manual_seed(0)
    d, obs, s2 = 3, 5, 0.5
    a = torch.randn(obs, d, generator=gen, dtype=torch.float64)
    b = torch.randn(obs, generator=gen, dtype=torch.float64)
    x = torch.randn(4, obs, generator=gen, dtype=torch.float64)
    marginal = torch.distributions.MultivariateNormal(b, a @ a.T + s2 * torch.eye(obs, dtype=torch.float64))
    exact = marginal.log_prob(x)
    post_cov = torch.linalg.inv(torch.eye(d, dtype=torch.float64) + a.T @ a / s2)
    post_mean = (x - b) @ a @ post_cov.T / s2  # [4, d]

    def log_weights(proposal_cov: torch.Tensor, k: int) -> torch.Tensor:
        q = torch.distributions.MultivariateNormal(post_mean, proposal_cov)
        z = q.sample((k,))  # [k, 4, d]
        log_lik = gaussian_log_prob(x, z @ a.T + b, math.log(s2)).sum(-1)
        return log_lik + gaussian_log_prob(z).sum(-1) - q.log_prob(z)

    torch.manual_seed(1)
    exact_weights = log_weights(post_cov, 10)
    torch.testing.assert_close(importance_estimate(exact_weights), exact)
    torch.testing.assert_close(importance_estimate(exact_weights, subtract_log_k=False), exact + math.log(10))
    torch.testing.assert_close(importance_estimate(log_weights(2.0 * post_cov, 20000)), exact, atol=0.02, rtol=0)


def exact_log_px(net: TVAENet, x: torch.Tensor, with_u: bool) -> torch.Tensor:
    """log p(x) of a one-unit latent model by quadrature over z (and u): [N]."""
    grid = torch.linspace(-9.0, 9.0, 721 if with_u else 6001, dtype=torch.float64)
    step = float(grid[1] - grid[0])
    if with_u:
        z, u = torch.meshgrid(grid, grid, indexing="ij")
        z, u = z.reshape(-1, 1), u.reshape(-1, 1)
        log_prior = (gaussian_log_prob(z) + gaussian_log_prob(u)).squeeze(1) + 2 * math.log(step)
        t = net.group(z, u)
    else:
        z = grid[:, None]
        log_prior = gaussian_log_prob(z).squeeze(1) + math.log(step)
        t = net.group(z, None)
    logits = net.decoder(t)  # [G, 1, s, s]
    target = x[:, None].expand(-1, len(t), -1, -1, -1)
    log_lik = -bernoulli_nll(logits[None].expand_as(target), target).flatten(2).sum(-1)
    return torch.logsumexp(log_lik + log_prior, dim=1)


@pytest.mark.parametrize("grouper", ["none", "stationary"])
def test_network_importance_log_likelihood_matches_quadrature(grouper: str) -> None:
    torch.manual_seed(3)
    net = TVAENet(1, 2, 1, 1, 1, grouper=grouper, group_kernel=(1, 1), mu_init=0.5, eps=0.1).double()
    x = torch.tensor([[0.0, 1.0], [1.0, 1.0]], dtype=torch.float64).view(1, 1, 2, 2).repeat(3, 1, 1, 1)
    x[1] = 1.0 - x[1]
    x[2] = 0.3
    with torch.no_grad():
        exact = exact_log_px(net, x, with_u=grouper != "none")
        estimate = net.importance_log_likelihood(x, n_samples=20000)
        uncorrected = net.importance_log_likelihood(x, n_samples=20000, subtract_log_k=False)
    torch.testing.assert_close(estimate, exact, atol=0.03, rtol=0)
    torch.testing.assert_close(uncorrected, exact + math.log(20000), atol=0.03, rtol=0)


def test_importance_log_likelihood_log_k_offset_and_bound() -> None:
    torch.manual_seed(0)
    net = TVAENet(1, 6, 2, 3, 3, grouper="shifting", group_kernel=(3, 3), mu_init=2.0)
    x = torch.rand(6, 1, 6, 6)
    torch.manual_seed(5)
    corrected = net.importance_log_likelihood(x, n_samples=10)
    torch.manual_seed(5)
    raw = net.importance_log_likelihood(x, n_samples=10, subtract_log_k=False)
    torch.testing.assert_close(raw - corrected, torch.full_like(raw, math.log(10)))
    # IS with many samples lies above the average single-sample ELBO (Jensen).
    with torch.no_grad():
        elbo = torch.stack(
            [-(o.neg_log_px.flatten(1).sum(1) + o.kl_z.sum(1) + o.kl_u.sum(1)) for o in (net(x) for _ in range(50))]
        ).mean(0)
    assert bool((net.importance_log_likelihood(x, n_samples=200) > elbo).all())


def test_sampling_decoding_and_rolling_shapes() -> None:
    net = TVAENet(3, 8, 2, 4, 4, grouper="shifting", group_kernel=(3, 3))
    samples = net.sample_prior(2, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (8, 3, 8, 8) and float(samples.min()) >= 0 and float(samples.max()) <= 1
    t = torch.arange(16.0).view(2, 8)
    rolled = net.roll_capsules(t, 1)
    assert rolled[0].tolist() == [3.0, 0.0, 1.0, 2.0, 7.0, 4.0, 5.0, 6.0]
    with pytest.raises(ValueError, match="expects images"):
        net(torch.rand(4, 1, 8, 8))
