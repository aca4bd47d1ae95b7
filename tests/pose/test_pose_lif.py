"""The decay-input LIF against spikingjelly 2.0's LIFNode (forward values and gradients)."""

import math

import pytest
import torch
from spikingjelly.activation_based import neuron, surrogate

from event_lightning.nn.pose import lif
from event_lightning.nn.pose.lif import DecayInputLIF, LIFParams, atan_spike, leaky_integrate, lif_multistep


def _spikingjelly_lif(tau: float) -> neuron.LIFNode:
    return neuron.LIFNode(
        tau=tau, decay_input=True, v_reset=None, surrogate_function=surrogate.ATan(alpha=2.0), step_mode="m"
    )


@pytest.mark.parametrize("tau", [2.0, 3.0, 5.0])
def test_forward_and_gradients_match_spikingjelly(tau):
    torch.manual_seed(0)
    x = (torch.randn(12, 3, 4, 5, 5) * 1.5 + 0.8).double()
    weights = torch.randn_like(x)
    x_ours = x.clone().requires_grad_(True)
    spikes, v_last = lif_multistep(x_ours, params=LIFParams(tau=tau))
    ((spikes * weights).sum() + v_last.square().sum()).backward()

    node = _spikingjelly_lif(tau)
    x_ref = x.clone().requires_grad_(True)
    spikes_ref = node(x_ref)
    ((spikes_ref * weights).sum() + node.v.square().sum()).backward()

    assert spikes.sum() > 0 and (1 - spikes).sum() > 0
    torch.testing.assert_close(spikes, spikes_ref)
    torch.testing.assert_close(v_last, node.v)
    torch.testing.assert_close(x_ours.grad, x_ref.grad)


def test_initial_potential_is_set_before_the_charge_step():
    torch.manual_seed(1)
    tau = 3.0
    x = torch.randn(6, 2, 7).double() + 0.5
    v0 = torch.randn(2, 7).double() * 2
    spikes, v_last = lif_multistep(x, v0, LIFParams(tau=tau))

    # spikingjelly: set v to v0 before the first multi-step call.
    node = _spikingjelly_lif(tau)
    node.v = v0.clone()
    spikes_ref = node(x)
    torch.testing.assert_close(spikes, spikes_ref)
    torch.testing.assert_close(v_last, node.v)

    # Hand-computed first step: charge from v0, fire, soft reset.
    v1 = v0 + (x[0] - v0) / tau
    torch.testing.assert_close(spikes[0], (v1 >= 1.0).double())
    # The initial potential changes the result (it is not ignored).
    assert not torch.equal(lif_multistep(x, None, LIFParams(tau=tau))[0], spikes)


def test_gradient_flows_into_the_initial_potential():
    torch.manual_seed(2)
    x = torch.randn(4, 3, 5).double()
    v0 = torch.randn(3, 5).double().requires_grad_(True)
    _, v_last = lif_multistep(x, v0, LIFParams(tau=3.0))
    v_last.sum().backward()
    assert v0.grad is not None and v0.grad.abs().sum() > 0


def test_atan_surrogate_gradient_formula():
    x = torch.linspace(-2, 2, 41, dtype=torch.float64, requires_grad=True)
    atan_spike(x, 2.0).sum().backward()
    expected = 1.0 / (1 + (math.pi * x.detach()) ** 2)
    torch.testing.assert_close(x.grad, expected)
    assert torch.equal(atan_spike(torch.tensor([-1e-9, 0.0, 1e-9]), 2.0), torch.tensor([0.0, 1.0, 1.0]))


def test_module_holds_no_state_between_calls():
    lif = DecayInputLIF(LIFParams(tau=2.0))
    x = torch.rand(5, 2, 3) * 3
    first = lif(x)
    second = lif(x)
    torch.testing.assert_close(first[0], second[0])
    torch.testing.assert_close(first[1], second[1])


def test_leaky_integrator_is_an_exponential_moving_average():
    x = torch.randn(8, 4).double()
    tau = 2.0
    out = leaky_integrate(x, tau)
    expected, v = [], torch.zeros(4).double()
    for step in x:
        v = (1 - 1 / tau) * v + step / tau
        expected.append(v)
    torch.testing.assert_close(out, torch.stack(expected))


def test_tau_must_exceed_one():
    with pytest.raises(ValueError, match="tau"):
        LIFParams(tau=1.0)


@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_fused_window_equals_the_step_loop_in_values_and_gradients(detach_reset, dtype):
    # lif_multistep runs an eager window as one autograd node; a compiled cell keeps the step loop
    torch.manual_seed(4)
    params = LIFParams(tau=3.0, detach_reset=detach_reset)
    x = (torch.randn(9, 2, 3, 4, 4) * 1.5 + 0.8).to(dtype)
    v0 = torch.randn(2, 3, 4, 4, dtype=torch.promote_types(dtype, torch.float32))
    weights = torch.randn(x.shape, dtype=v0.dtype)
    results = []
    for cell in (None, DecayInputLIF(params).cell.requires_grad_(False)):
        x_in, v_in = x.clone().requires_grad_(True), v0.clone().requires_grad_(True)
        if cell is not None:
            cell._compiled_call_impl = cell._call_impl  # looks compiled: the step loop runs
        spikes, v_last = lif_multistep(x_in, v_in, params, cell)
        ((spikes * weights).sum() + v_last.square().sum()).backward()
        results.append((spikes, v_last, x_in.grad, v_in.grad))
    (fused, looped) = results
    assert fused[0].sum() > 0 and (1 - fused[0]).sum() > 0
    for a, b in zip(fused, looped, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_cpu_loops_equal_the_torch_loops_bit_for_bit(monkeypatch, detach_reset, dtype):
    assert lif.lif_cpu_kernels() is not None  # numba is a dependency: the CPU runs the compiled loops
    torch.manual_seed(5)
    params = LIFParams(tau=2.0, detach_reset=detach_reset)
    x = (torch.randn(7, 3, 5, 6, 6) * 1.5 + 0.8).to(dtype)
    v0 = torch.randn(3, 5, 6, 6, dtype=dtype)
    weights = torch.randn(x.shape, dtype=dtype)
    results = []
    for compiled in (True, False):
        if not compiled:
            monkeypatch.setattr(lif, "lif_cpu_kernels", lambda: None)
        x_in, v_in = x.clone().requires_grad_(True), v0.clone().requires_grad_(True)
        spikes, v_last = lif_multistep(x_in, v_in, params)
        ((spikes * weights).sum() + v_last.square().sum()).backward()
        results.append((spikes, v_last, x_in.grad, v_in.grad))
    assert results[0][0].sum() > 0 and (1 - results[0][0]).sum() > 0
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_the_compiled_loops_leave_the_initial_potential_untouched():
    v0 = torch.full((4,), 0.5, requires_grad=True)
    spikes, v_last = lif_multistep(torch.full((3, 4), 3.0), v0, LIFParams())
    assert torch.equal(v0.detach(), torch.full((4,), 0.5))
    assert spikes.sum() > 0 and not torch.equal(v_last, v0.detach())


def test_without_numba_the_loops_warn_once_and_the_torch_loop_runs(monkeypatch):
    import numba

    from event_lightning.nn.pose.cpu_kernels import cpu_kernels

    monkeypatch.setattr(numba.config, "DISABLE_JIT", True)
    cpu_kernels.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="NUMBA_DISABLE_JIT"):
            assert lif.lif_cpu_kernels() is None
        spikes, _ = lif_multistep(torch.full((2, 3), 3.0))  # the torch loop
        assert torch.equal(spikes, torch.ones(2, 3))
    finally:
        cpu_kernels.cache_clear()
