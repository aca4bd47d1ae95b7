"""The DECOLLE encoder's traces as one product over time: equal to stepping the equations, and
float32 under bf16 autocast (spikes flipped < 0.5 %, traces < 1 % at T = 500).

The reference is the pure step function :meth:`DecolleLIFLayer.step` looped over time (the
recursion the encoder computed before the traces became a kernel product).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from event_lightning.models.hgvae import HybridGuidedVAE, reconstruction_weights
from event_lightning.nn.decolle import (
    DecolleEncoder,
    DecolleEncoderConfig,
    DecolleLIFLayer,
    LIFState,
    lif_trace_step,
    trace_kernels,
)
from event_lightning.nn.hgvae import lsuv_init

bf16 = torch.autocast("cpu", dtype=torch.bfloat16)


def _stepped_traces(s_in: torch.Tensor, state: LIFState, alpha: float, beta: float) -> tuple[torch.Tensor, LIFState]:
    """``P [T, ...]`` and the final state by the recursion, one step at a time."""
    p = []
    for t in range(s_in.shape[0]):
        state = lif_trace_step(s_in[t], state, alpha, beta)
        p.append(state.p)
    return torch.stack(p), state


@pytest.mark.parametrize(("alpha", "beta"), [(0.99, 0.97), (0.9, 0.9), (0.0, 0.5), (0.5, 0.0), (0.0, 0.0)])
def test_trace_kernels_are_the_impulse_responses_of_the_recursion(alpha: float, beta: float) -> None:
    steps = 40
    kernels = trace_kernels(steps, alpha, beta, dtype=torch.float64)
    # column r of the membrane kernel: the response of P to a unit spike at r, from zero state
    impulses = torch.eye(steps, dtype=torch.float64)
    zero = LIFState(torch.zeros(steps, dtype=torch.float64), torch.zeros(steps, dtype=torch.float64))
    p, final = _stepped_traces(impulses, zero, alpha, beta)
    assert torch.allclose(kernels.membrane, p, rtol=1e-12, atol=1e-15)
    assert torch.equal(kernels.membrane.triu(), torch.zeros_like(kernels.membrane))  # P uses the previous Q
    assert torch.allclose(kernels.synaptic_last, final.q, rtol=1e-12, atol=1e-15)
    # the initial traces decay through the same recursion with no input
    silence = torch.zeros(steps, 2, dtype=torch.float64)
    initial = LIFState(torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64))
    p, final = _stepped_traces(silence, initial, alpha, beta)
    assert torch.allclose(kernels.membrane_from_q, p[:, 0], rtol=1e-12, atol=1e-15)
    assert torch.allclose(kernels.membrane_from_p, p[:, 1], rtol=1e-12, atol=1e-15)
    assert kernels.synaptic_last_from_q == pytest.approx(float(final.q[0]), rel=1e-12, abs=1e-300)


def _encoder(channels=(6, 8), dtype=torch.float64) -> DecolleEncoder:
    torch.manual_seed(3)
    encoder = DecolleEncoder(DecolleEncoderConfig((2, 16, 16), channels, (2, 1), 5, 12, (0.9, 0.95, 0.97), 0.8))
    with torch.no_grad():
        for layer in encoder.layers:
            layer.base_layer.weight.mul_(4.0)
            layer.base_layer.bias.uniform_(-0.05, 0.1)  # both signs: the warm-up spikes H(b) are mixed
    return encoder.to(dtype)


def _stepped_encoder(encoder: DecolleEncoder, x: torch.Tensor) -> torch.Tensor:
    """The reference: a gradient-free warm-up step on frame 0, then every layer stepped over 0..T-1."""
    layers = list(encoder.layers)
    flatten = [isinstance(layer.base_layer, nn.Linear) for layer in layers]
    states = []
    with torch.no_grad():
        s = x[0]
        for layer, flat in zip(layers, flatten, strict=True):
            s, _, state = layer.step(s.flatten(1) if flat else s)
            states.append(state)
    for t in range(x.shape[0]):
        s = x[t]
        for i, (layer, flat) in enumerate(zip(layers, flatten, strict=True)):
            s, u, states[i] = layer.step(s.flatten(1) if flat else s, states[i])
    return u


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("block_bytes", [None, 1])  # the last conv layer's spikes summed at once / step by step
def test_encoder_equals_the_stepped_reference_outputs_and_gradients(
    dtype: torch.dtype, block_bytes: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if block_bytes is not None:
        monkeypatch.setattr("event_lightning.nn.decolle.blocked._CPU_BLOCK_BYTES", block_bytes)
    encoder = _encoder(dtype=dtype)
    reference = _encoder(dtype=dtype)
    x = torch.poisson(torch.full((30, 3, 2, 16, 16), 0.3, dtype=dtype), generator=torch.Generator().manual_seed(0))
    u = encoder(x)
    u_ref = _stepped_encoder(reference, x)
    tolerance = {"rtol": 1e-10, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-5}
    assert torch.allclose(u, u_ref, **tolerance)
    (u.square().sum() + u.sum()).backward()
    (u_ref.square().sum() + u_ref.sum()).backward()
    for (name, p), p_ref in zip(encoder.named_parameters(), reference.parameters(), strict=True):
        scale = p_ref.grad.abs().max()
        assert scale > 0, name  # every layer gets a gradient through the surrogate
        assert torch.allclose(p.grad / scale, p_ref.grad / scale, **tolerance), name


def test_layer_state_in_and_out_of_a_sequence() -> None:
    torch.manual_seed(0)
    layer = DecolleLIFLayer(nn.Conv2d(2, 3, 3, padding=1), 0.9, 0.7, pool_size=2).double()
    s_in = (torch.rand(9, 2, 2, 6, 6) < 0.3).double()
    state = LIFState(torch.rand(2, 2, 6, 6).double(), torch.rand(2, 2, 6, 6).double())
    p, final = layer.traces(s_in, state)
    p_ref, final_ref = _stepped_traces(s_in, state, 0.9, 0.7)
    assert torch.allclose(p, p_ref) and torch.allclose(final.q, final_ref.q) and torch.allclose(final.p, final_ref.p)
    assert torch.allclose(layer.last_trace(s_in, state), p_ref[-1])
    no_membrane = LIFState(state.q, None)  # p = None: an all-zero membrane trace
    p_ref, _ = _stepped_traces(s_in, LIFState(state.q, torch.zeros_like(state.p)), 0.9, 0.7)
    assert torch.allclose(layer.traces(s_in, no_membrane)[0], p_ref)
    assert torch.allclose(layer.last_trace(s_in, no_membrane), p_ref[-1])
    # counts of an integer dtype are traced as float32
    p_counts, _ = layer.float().traces(s_in.to(torch.uint8))
    assert p_counts.dtype == torch.float32


def test_traces_and_target_stay_float32_and_exact_under_bf16_autocast() -> None:
    layer = DecolleLIFLayer(nn.Conv2d(2, 4, 5, padding=2), 0.99, 0.97, pool_size=2)
    s_in = torch.poisson(torch.full((200, 2, 2, 32, 32), 0.2), generator=torch.Generator().manual_seed(1))
    p32, final32 = layer.traces(s_in)
    with bf16:
        p, final = layer.traces(s_in)
        spikes, u, _ = layer(s_in)
    # the same kernel products with autocast off: bit for bit the float32 traces
    assert p.dtype == final.q.dtype == u.dtype == spikes.dtype == torch.float32
    assert torch.equal(p, p32) and torch.equal(final.q, final32.q)
    model = HybridGuidedVAE(conv_channels=[4], pool_sizes=[2], num_classes=4, dimz=20)
    counts = s_in.to(torch.uint8)
    target32 = model.reconstruction_target(counts)
    with bf16:
        target = model.reconstruction_target(counts)
    assert target.dtype == torch.float32 and torch.equal(target, target32)


def test_reconstruction_weights_are_the_numpy_weights() -> None:
    from event_lightning.events.represent.trace import double_exponential_weights

    for steps, alpha, beta in ((200, 0.99, 0.97), (40, 0.97, 0.92), (700, 0.99, 0.97), (3, 0.9, 0.5)):
        expected = torch.from_numpy(double_exponential_weights(steps, alpha=alpha, beta=beta))
        assert torch.allclose(reconstruction_weights(steps, alpha=alpha, beta=beta), expected, rtol=1e-12, atol=1e-15)


def test_bf16_autocast_drift_at_500_steps() -> None:
    """The synthetic gesture encoder (widths 8/16/32, alpha .99, beta .97), LSUV-initialised,
    500 steps of Poisson counts: bf16-mixed against float32, layer by layer."""
    torch.manual_seed(0)
    encoder = DecolleEncoder(DecolleEncoderConfig((2, 32, 32), (8, 16, 32), (2, 1, 2), 5, 128, 0.99, 0.97))
    x = torch.poisson(torch.full((500, 2, 2, 32, 32), 0.05))
    lsuv_init(encoder, x[:100])  # (the first 100 steps: a quicker initialisation, the same statistics)

    def run(autocast: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
        recorded: list[tuple[torch.Tensor, torch.Tensor]] = []
        hooks = [
            layer.register_forward_hook(lambda m, i, out: recorded.append((out[0], out[2].p)))
            for layer in encoder.layers[:-1]
        ]
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            readout = encoder(x)
        for hook in hooks:
            hook.remove()
        assert readout.dtype == torch.float32
        return recorded

    for (spikes32, trace32), (spikes, trace) in zip(run(False), run(True), strict=True):
        assert spikes.dtype == trace.dtype == torch.float32
        assert 0.1 < spikes32.mean() < 0.9  # the layer is active, the comparison means something
        flipped = (spikes != spikes32).float().mean()
        error = (trace - trace32).norm() / trace32.norm()
        bias = (trace - trace32).sum() / trace32.abs().sum()
        print(f"spikes flipped {flipped:.3%}, trace error {error:.3%}, bias {bias:+.3%}")
        assert flipped < 0.005 and error < 0.01 and abs(bias) < 0.001


def _blocked_case(
    base: nn.Conv2d, pool_size: int, channels_last: bool, state_kind: str
) -> tuple[DecolleLIFLayer, torch.Tensor, LIFState | None]:
    """A float64 conv LIF layer around ``base``, input spikes ``[7, 2, 3, 8, 8]`` and an initial state."""
    layer = DecolleLIFLayer(base, 0.9, 0.7, pool_size=pool_size).double()
    spikes = (torch.rand(7, 2, 3, 8, 8) < 0.3).double()
    if channels_last:  # as a conv layer's spikes come out on a CPU: memory order T, B, H, W, C
        spikes = spikes.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    q0, p0 = torch.rand(2, 3, 8, 8).double(), torch.rand(2, 3, 8, 8).double()
    state = {"none": None, "warm-up": LIFState(q0, None), "full": LIFState(q0, p0)}[state_kind]
    return layer, spikes, state


def _assert_blocked_equals_whole(
    layer: DecolleLIFLayer,
    spikes: torch.Tensor,
    run: Callable[[torch.Tensor], tuple[torch.Tensor, list[torch.Tensor]]],
    names: list[str],
    block_bytes: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``run(s_in) -> (loss, outputs)`` with the blocked CPU path forced on, then off: the outputs and the
    gradients of the input spikes, the weights and the bias agree."""
    results = []
    for blocked in (True, False):
        monkeypatch.setattr("event_lightning.nn.decolle.blocked._CPU_BLOCK_BYTES", block_bytes)
        monkeypatch.setattr(DecolleLIFLayer, "_blocked_on_cpu", lambda self, s_in, on=blocked: on)
        layer.zero_grad(set_to_none=True)
        s_in = spikes.clone().requires_grad_(True)
        loss, outputs = run(s_in)
        loss.backward()
        grads = [s_in.grad, layer.base_layer.weight.grad, layer.base_layer.bias.grad]
        results.append([*(output.detach() for output in outputs), *grads])
    names = [*names, "input gradient", "weight gradient", "bias gradient"]
    for name, blocked_value, whole_value in zip(names, *results, strict=True):
        assert blocked_value.abs().max() > 0, name
        assert blocked_value.shape == whole_value.shape, name
        assert torch.allclose(blocked_value, whole_value, rtol=1e-10, atol=1e-12), name


@pytest.mark.parametrize("pool_size", [1, 2])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("state_kind", ["none", "warm-up", "full"])
@pytest.mark.parametrize("block_bytes", [1, 3 * 2 * 4 * 8 * 8 * 8])  # blocks of 1 step; of 3, 3 and 1 steps
def test_blocked_cpu_potentials_equal_the_whole_sequence_outputs_and_gradients(
    pool_size: int, channels_last: bool, state_kind: str, block_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CPU path that runs traces, conv and pool one block of steps at a time, carrying the
    trace state (and, backwards, its adjoint) from block to block, against the whole-sequence
    product, conv and pool under autograd: potentials, final state, and the gradients of the
    input spikes, the weights and the bias."""
    torch.manual_seed(0)
    layer, spikes, state = _blocked_case(nn.Conv2d(3, 4, 5, padding=2), pool_size, channels_last, state_kind)

    def run(s_in: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        u, final = layer.potentials(s_in, state)
        return u.square().sum() + u.sum() + final.p.sum() + final.q.sum(), [u, final.q, final.p]

    _assert_blocked_equals_whole(layer, spikes, run, ["potentials", "final q", "final p"], block_bytes, monkeypatch)


@pytest.mark.parametrize("conv", ["same", "strided"])
@pytest.mark.parametrize("pool_size", [1, 2])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("state_kind", ["none", "warm-up", "full"])
@pytest.mark.parametrize("block_bytes", [1, 3 * 2 * 4 * 8 * 8 * 8])  # blocks of 1 step; of 3, 3 and 1 steps
def test_blocked_cpu_weighted_spikes_equal_the_whole_sequence_outputs_and_gradients(
    conv: str, pool_size: int, channels_last: bool, state_kind: str, block_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last conv layer handing on only ``sum_t w[t] S[t]`` and ``U[T-1]``: in blocks of steps that
    keep no [T, ...] potentials, against the whole-sequence potentials summed by the surrogate spike
    sum; both outputs and the gradients of the input spikes, the weights and the bias through both."""
    torch.manual_seed(0)
    base = nn.Conv2d(3, 4, 5, padding=2) if conv == "same" else nn.Conv2d(3, 4, 3, stride=2, padding=1)
    layer, spikes, state = _blocked_case(base, pool_size, channels_last, state_kind)
    weights = torch.rand(7, dtype=torch.float64)

    def run(s_in: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        summed, u_last = layer.spikes_weighted_over_time(s_in, weights, state)
        readout = torch.linspace(-1.0, 1.0, summed.numel(), dtype=torch.float64).view_as(summed)
        return (summed * readout).sum() + u_last.square().sum(), [summed, u_last]

    names = ["weighted spikes", "last potentials"]
    _assert_blocked_equals_whole(layer, spikes, run, names, block_bytes, monkeypatch)


def test_blocked_cpu_potentials_are_the_default_on_a_cpu_only() -> None:
    layer = DecolleLIFLayer(nn.Conv2d(2, 4, 5, padding=2), 0.9, 0.7, pool_size=2)
    s_in = torch.zeros(3, 2, 2, 8, 8)
    assert layer._blocked_on_cpu(s_in)
    with bf16:  # low-precision conv: the whole-sequence path, which casts its output back to float32
        assert not layer._blocked_on_cpu(s_in)
    assert not layer._blocked_on_cpu(s_in.double())  # the weights' dtype differs from the traces'
