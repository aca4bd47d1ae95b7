"""HG-VAE blocks: shapes and parameter counts of the three configurations, target filter, LSUV,
losses and the learning-rate schedule."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from event_lightning.models.hgvae import HybridGuidedVAE, learning_rate_at_epoch, multilabel_soft_margin_sum
from event_lightning.nn.decolle import DecolleEncoder, DecolleEncoderConfig
from event_lightning.nn.hgvae import (
    Decoder,
    GuideClassifier,
    HybridGuidedVAENet,
    encoder_preset,
    kl_divergence,
    lsuv_init,
)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("preset", "k", "encoder_params", "u_shapes"),
    [
        ("gestures", 10, 1_306_528, [(32, 16, 16), (64, 16, 16), (128, 8, 8), (128,)]),
        ("lighting", 4, 1_408_992, [(32, 16, 16), (64, 16, 16), (64, 8, 8), (128, 8, 8), (128,)]),
        ("nmnist", 10, 992_810, [(12, 16, 16), (30, 16, 16), (128,)]),
    ],
)
def test_shapes_and_parameter_counts(preset: str, k: int, encoder_params: int, u_shapes: list) -> None:
    config = encoder_preset(preset)
    net = HybridGuidedVAENet(config, k)
    assert _count(net.encoder) == encoder_params
    assert _count(net.decoder) == 439_936  # Linear 100->128 + 4 bias-free ConvT
    assert config.flat_features == {"gestures": 8192, "lighting": 8192, "nmnist": 7680}[preset]
    x = (torch.rand(3, 2, 2, 32, 32) < 0.2).float()
    readouts = net.encoder.membrane_at_last_step(x)
    assert [tuple(u.shape[1:]) for u in readouts] == u_shapes
    out = net(x)
    assert out.mu.shape == out.logvar.shape == out.z.shape == (2, 100)
    assert out.recon.shape == (2, 2, 32, 32) and (out.recon >= 0).all()
    assert out.excite_logits.shape == (2, k)
    inhibit = GuideClassifier(100 - k, k, 40 if preset == "lighting" else 100)
    assert inhibit(out.z[:, k:]).shape == (2, k)


def test_decoder_layers_and_logvar_init() -> None:
    decoder = Decoder(100, 16, 2)
    sizes = []
    h = decoder.fc(torch.zeros(1, 100))[:, :, None, None]
    for layer in decoder.deconv:
        h = layer(h)
        if isinstance(layer, torch.nn.ConvTranspose2d):
            sizes.append(tuple(h.shape[1:]))
            assert layer.bias is None
    assert sizes == [(128, 4, 4), (64, 8, 8), (32, 16, 16), (2, 32, 32)]
    net = HybridGuidedVAENet(encoder_preset("nmnist"), 10)
    assert net.logvar_head.weight.abs().max() < 1e-15 and net.logvar_head.bias.abs().max() < 1e-15
    mu, logvar = net.encode((torch.rand(4, 3, 2, 32, 32) < 0.2).float())
    assert logvar.abs().max() < 1e-12  # sigma = 1 at the start


def test_guided_split_of_the_excitation_net() -> None:
    net = HybridGuidedVAENet(encoder_preset("nmnist"), 10, dimz=30, classifier_hidden=8)
    assert net.excite.model[0].in_features == 10 and net.excite.model[-1].out_features == 10
    with pytest.raises(ValueError, match="num_guided"):
        HybridGuidedVAENet(encoder_preset("nmnist"), 30, dimz=30)


@pytest.mark.parametrize(
    ("alpha", "beta", "expected", "constant"),
    [
        (0.99, 0.97, {0: 0.10, 100: 0.24, 150: 0.29, 190: 0.11, 199: 0.0}, 40.0),
        (0.97, 0.92, {0: 0.006, 150: 0.51, 190: 0.67, 199: 0.0}, 50.0),
    ],
)
def test_reconstruction_target_on_impulses(alpha: float, beta: float, expected: dict, constant: float) -> None:
    model = HybridGuidedVAE(conv_channels=[4], pool_sizes=[2], alpha=alpha, beta=beta, dimz=20, num_classes=4)
    steps = 200
    for t, weight in expected.items():
        frames = torch.zeros(steps, 1, 2, 32, 32)
        frames[t, 0, 1, 5, 7] = 1.0
        target = model.reconstruction_target(frames)
        assert target.shape == (1, 2, 32, 32)
        assert target[0, 1, 5, 7].item() == pytest.approx(weight, abs=0.006)
        assert target.sum().item() == pytest.approx(target[0, 1, 5, 7].item())
    ones = model.reconstruction_target(torch.ones(steps, 1, 2, 32, 32))
    assert ones.mean().item() == pytest.approx(constant, rel=0.01)


def test_target_uses_the_last_layer_decays() -> None:
    model = HybridGuidedVAE(conv_channels=[4], pool_sizes=[2], alpha=[0.5, 0.99], beta=[0.5, 0.97], num_classes=4)
    assert (model.target_alpha, model.target_beta) == (0.99, 0.97)


def test_lsuv_reaches_unit_variance_and_survives_a_silent_layer() -> None:
    torch.manual_seed(0)
    encoder = DecolleEncoder(DecolleEncoderConfig((2, 16, 16), (8, 8), (2, 1), 5, 32, 0.97, 0.92))
    x = (torch.rand(20, 16, 2, 16, 16) < 0.1).float()
    report = lsuv_init(encoder, x)
    assert report.converged and report.silent == ()
    assert all(abs(m + 0.1) <= 0.2 for m in report.means)
    readouts = encoder.membrane_at_last_step(x)
    assert abs(float(readouts[0].var()) - 1.0) < 0.1  # first layer: exact after one division
    # No input spikes at all: every layer's U is constant (its bias); no division by zero.
    silent = lsuv_init(encoder, torch.zeros(20, 4, 2, 16, 16), max_iterations=5)
    assert silent.silent == (0, 1, 2)
    assert all(torch.isfinite(p).all() for p in encoder.parameters())


def _stepped_last_membranes(encoder: DecolleEncoder, frames: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each layer's pooled U after stepping ``frames`` one by one from zero state (the reference's loop)."""
    states: list = [None] * len(encoder.layers)
    last: list[torch.Tensor] = []
    for frame in frames:
        spikes, last = frame, []
        for i, layer in enumerate(encoder.layers):
            if isinstance(layer.base_layer, torch.nn.Linear):
                spikes = spikes.flatten(1)
            spikes, u, states[i] = layer.step(spikes, states[i])
            last.append(u)
    return last


def test_lsuv_reference_rule_stops_in_the_pass_whose_means_meet_the_target() -> None:
    """decolle's init_LSUV as the reference ran it: one pass on statistics of a run that sees frame 0
    three times, population variance, the rescale of that pass kept, biases still zero."""
    torch.manual_seed(0)
    encoder = DecolleEncoder(DecolleEncoderConfig((2, 16, 16), (8, 8), (2, 1), 5, 32, 0.97, 0.92))
    x = (torch.rand(20, 16, 2, 16, 16) < 0.1).float()
    expected = copy.deepcopy(encoder)
    torch.manual_seed(1)
    for layer in expected.layers:
        torch.nn.init.orthogonal_(layer.base_layer.weight)
        torch.nn.init.zeros_(layer.base_layer.bias)
    with torch.no_grad():
        membranes = _stepped_last_membranes(expected, [x[0], x[0], *x])
    for layer, u in zip(expected.layers, membranes, strict=True):
        variance = float(np.var(u.numpy()))
        assert abs(float(u.mean()) + 0.1) <= 0.2  # every mean meets the target in the first pass
        if abs(variance - 1.0) > 0.1:
            layer.base_layer.weight.data /= math.sqrt(variance)

    torch.manual_seed(1)
    report = lsuv_init(encoder, x, rule="reference")
    assert report.iterations == 1 and report.converged
    assert all(torch.equal(layer.base_layer.bias, torch.zeros_like(layer.base_layer.bias)) for layer in encoder.layers)
    for ours, theirs in zip(encoder.layers, expected.layers, strict=True):
        torch.testing.assert_close(ours.base_layer.weight, theirs.base_layer.weight, rtol=1e-5, atol=1e-7)
    # the project's rule re-measures after the rescale and goes on
    recheck = lsuv_init(copy.deepcopy(encoder), x, rule="recheck")
    assert recheck.iterations > 1
    with pytest.raises(ValueError, match="rule"):
        lsuv_init(encoder, x, rule="mishkin")


def test_losses_and_schedule() -> None:
    # MultiLabelSoftMargin with sum reduction: ln 2 per sample at zero logits against 0.5 targets.
    logits = torch.zeros(6, 4)
    assert multilabel_soft_margin_sum(logits, torch.full((6, 4), 0.5)).item() == pytest.approx(6 * math.log(2))
    onehot = torch.eye(4)[[0, 1]]
    big = 20.0 * (2 * onehot - 1)
    assert multilabel_soft_margin_sum(big, onehot).item() < 1e-6
    mu, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(2.0)]])
    assert kl_divergence(mu, logvar).item() == pytest.approx(0.5 * (1.0 + (2.0 - 1.0 - math.log(2.0))))
    lrs = [learning_rate_at_epoch(3e-3, e, 60, 1.5) for e in (0, 59, 60, 119, 120, 180)]
    assert np.allclose(lrs, [3e-3, 3e-3, 2e-3, 2e-3, 1e-3, 3e-3 / 4.5])
    assert learning_rate_at_epoch(3e-4, 5, 1, 1.01) == pytest.approx(3e-4 / 5.05)


def test_optimisers_follow_the_reference() -> None:
    model = HybridGuidedVAE(conv_channels=[4], pool_sizes=[2], num_classes=4, dimz=20)
    optimizers, schedulers = model.configure_optimizers()
    kinds = [type(o).__name__ for o in optimizers]
    assert kinds == ["Adamax", "Adam", "Adam", "Adam"]
    assert optimizers[0].defaults["betas"] == (0.0, 0.95) and optimizers[0].defaults["eps"] == 1e-4
    assert [o.defaults["lr"] for o in optimizers] == [3e-3, 3e-3, 3e-3, 1e-3]
    encoder_ids = {id(p) for p in model.net.encoder.parameters()}
    assert {id(p) for g in optimizers[0].param_groups for p in g["params"]} == encoder_ids
    assert {id(p) for g in optimizers[3].param_groups for p in g["params"]} == {
        id(p) for p in model.inhibit.parameters()
    }
    scheduler = schedulers[0]["scheduler"]
    model2 = HybridGuidedVAE(conv_channels=[4], pool_sizes=[2], num_classes=4, dimz=20, lr_drop_interval=2)
    opt2, sch2 = model2.configure_optimizers()
    for _ in range(4):
        sch2[0]["scheduler"].step()
    assert opt2[0].param_groups[0]["lr"] == pytest.approx(3e-3 / (2 * 1.5))
    assert scheduler.get_last_lr()[0] == pytest.approx(3e-3)
