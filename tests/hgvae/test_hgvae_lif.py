"""DECOLLE LIF layer of the HG-VAE against its equations, on hand-computed inputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from event_lightning.nn.decolle import (
    DecolleEncoder,
    DecolleEncoderConfig,
    DecolleLIFLayer,
    LIFState,
    fast_sigmoid_spike,
    lif_trace_step,
)

ALPHA, BETA = 0.9, 0.8


def _identity_dense(bias: float = 0.0) -> DecolleLIFLayer:
    linear = nn.Linear(1, 1)
    with torch.no_grad():
        linear.weight.fill_(1.0)
        linear.bias.fill_(bias)
    return DecolleLIFLayer(linear, ALPHA, BETA)


def test_traces_follow_the_equations_for_an_impulse() -> None:
    # One input spike at t=0: Q = (1-b) b^t; P[0] = 0 because P uses the PREVIOUS Q;
    # P[t] = a P[t-1] + (1-a) Q[t-1].
    layer = _identity_dense()
    s_in = torch.tensor([1.0, 0.0, 0.0, 0.0])[:, None, None]  # [T, B=1, F=1]
    q = [(1 - BETA) * BETA**t for t in range(4)]
    p = [0.0]
    for t in range(1, 4):
        p.append(ALPHA * p[-1] + (1 - ALPHA) * q[t - 1])
    spikes, u, state = layer(s_in)
    assert torch.allclose(u.flatten(), torch.tensor(p), atol=1e-7)
    # Hand values: P[1] = 0.1 * 0.2 = 0.02; P[2] = 0.9 * 0.02 + 0.1 * 0.16 = 0.034.
    assert u.flatten()[1].item() == pytest.approx(0.02)
    assert u.flatten()[2].item() == pytest.approx(0.034)
    assert torch.allclose(state.q.flatten(), torch.tensor([q[-1]]))
    assert spikes.flatten().tolist() == [0.0, 1.0, 1.0, 1.0]  # H(U > 0), U[0] = 0 gives no spike


def test_bias_and_heaviside_without_reset() -> None:
    # U = W P + b; no reset: a neuron above threshold keeps spiking every step.
    layer = _identity_dense(bias=-0.03)
    s_in = torch.ones(6, 1, 1)
    spikes, u, _ = layer(s_in)
    expected = [int(v > 0) for v in (u.flatten()).tolist()]
    assert spikes.flatten().tolist() == expected
    assert expected == [0, 0, 1, 1, 1, 1]  # P = 0, .02, .054, ... minus .03


def test_pure_step_matches_sequence() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=1)
    layer = DecolleLIFLayer(conv, ALPHA, BETA, pool_size=2).double()
    s_in = (torch.rand(7, 2, 2, 6, 6) < 0.3).double()
    spikes, u, final = layer(s_in)
    state = LIFState(torch.zeros_like(s_in[0]), torch.zeros_like(s_in[0]))
    for t in range(7):
        s_t, u_t, state = layer.step(s_in[t], state)
        assert torch.allclose(u_t, u[t]) and torch.equal(s_t, spikes[t])
    assert u.shape == (7, 2, 3, 3, 3)  # pooled 6x6 -> 3x3
    assert torch.allclose(final.p, state.p) and torch.allclose(final.q, state.q)
    q, p = lif_trace_step(s_in[0], LIFState(final.q, final.p), ALPHA, BETA)
    assert torch.allclose(p, ALPHA * final.p + (1 - ALPHA) * final.q)


def test_pooling_is_applied_to_u_before_the_threshold() -> None:
    conv = nn.Conv2d(1, 1, 1, bias=True)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(0.0)
    layer = DecolleLIFLayer(conv, ALPHA, BETA, pool_size=2)
    state = LIFState(torch.zeros(1, 1, 2, 2), torch.tensor([[[[-1.0, -2.0], [0.5, -3.0]]]]))
    spikes, u, _ = layer.step(torch.zeros(1, 1, 2, 2), state)
    assert u.shape == (1, 1, 1, 1) and u.item() == pytest.approx(ALPHA * 0.5)
    assert spikes.item() == 1.0


def test_fast_sigmoid_surrogate_gradient() -> None:
    u = torch.tensor([-0.5, -0.1, 0.0, 0.2, 1.0], requires_grad=True)
    s = fast_sigmoid_spike(u, 10.0)
    assert s.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    s.sum().backward()
    expected = 1.0 / (1.0 + 10.0 * u.detach().abs()) ** 2  # 1/36, 1/4, 1, 1/9, 1/121
    assert torch.allclose(u.grad, expected)
    assert u.grad[1].item() == pytest.approx(0.25)


def test_encoder_reads_last_step_and_warmup_counts_frame_zero_twice() -> None:
    torch.manual_seed(1)
    config = DecolleEncoderConfig((2, 8, 8), (3,), (2,), 3, 5, ALPHA, BETA)
    encoder = DecolleEncoder(config).double()
    with torch.no_grad():
        for layer in encoder.layers:
            layer.base_layer.bias.uniform_(-0.1, 0.1)
    x = (torch.rand(5, 2, 2, 8, 8) < 0.4).double()
    u = encoder(x)
    assert u.shape == (2, 5)
    # Reference: one gradient-free step on frame 0 from zero state, then steps 0..T-1.
    states = []
    s = x[0]
    for i, layer in enumerate(encoder.layers):
        s = s.flatten(1) if i == 1 else s
        s, _, st = layer.step(s)
        states.append(st)
    for t in range(5):
        s = x[t]
        for i, layer in enumerate(encoder.layers):
            s = s.flatten(1) if i == 1 else s
            s, u_t, states[i] = layer.step(s, states[i])
    assert torch.allclose(u, u_t)
    no_warmup = DecolleEncoder(DecolleEncoderConfig((2, 8, 8), (3,), (2,), 3, 5, ALPHA, BETA, warmup_first_step=False))
    no_warmup.load_state_dict(encoder.state_dict())
    assert not torch.allclose(no_warmup.double()(x), u)


def test_a_hooked_last_conv_layer_sees_its_spikes_and_changes_nothing() -> None:
    # unhooked, the last conv layer's spikes are summed into the dense trace without being stored;
    # a forward hook (the spike-raster figures) takes the layer's own forward instead
    torch.manual_seed(2)
    encoder = DecolleEncoder(DecolleEncoderConfig((2, 8, 8), (3, 4), (2, 1), 3, 5, ALPHA, BETA)).double()
    x = (torch.rand(6, 2, 2, 8, 8) < 0.4).double().requires_grad_()
    fused = encoder.membrane_at_last_step(x)
    (fused_grad,) = torch.autograd.grad(sum(u.sum() for u in fused), x)
    seen: list[torch.Tensor] = []
    handle = encoder.layers[1].register_forward_hook(lambda module, args, out: seen.append(out[0]))
    hooked = encoder.membrane_at_last_step(x)
    (hooked_grad,) = torch.autograd.grad(sum(u.sum() for u in hooked), x)
    handle.remove()
    assert len(seen) == 1 and seen[0].shape[:2] == (6, 2) and set(seen[0].unique().tolist()) <= {0.0, 1.0}
    for a, b in zip(fused, hooked, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fused_grad, hooked_grad, rtol=1e-12, atol=1e-12)


def test_layer_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="alpha"):
        DecolleLIFLayer(nn.Linear(1, 1), 1.0, 0.5)
    with pytest.raises(ValueError, match="pooling needs a Conv2d"):
        DecolleLIFLayer(nn.Linear(1, 1), 0.5, 0.5, pool_size=2)
    with pytest.raises(ValueError, match="one pool size per conv layer"):
        DecolleEncoderConfig(conv_channels=(4, 8), pool_sizes=(2,))
