"""The LIF classifier's speed paths compute what the plain step loops compute."""

from __future__ import annotations

import pytest
import torch

from event_lightning.nn.lif import (
    LIFScanCells,
    LIParameters,
    input_projection,
    leaky_integrator_scan,
    leaky_integrator_step,
    lif_recurrent_scan,
)


def _loop(current: torch.Tensor, v: torch.Tensor, i: torch.Tensor, p: LIParameters, dt: float):
    voltages = []
    for step in current.unbind(0):
        v, i = leaky_integrator_step(step, v, i, p, dt)
        voltages.append(v)
    return torch.stack(voltages), v, i


@pytest.mark.parametrize("steps", [1, 7, 200])
def test_leaky_integrator_kernel_equals_the_step_loop_with_gradients(steps):
    torch.manual_seed(steps)
    p = LIParameters(tau_syn_inv=200.0, tau_mem_inv=100.0, v_leak=0.2)
    dt = 1e-3
    inputs = [torch.randn(steps, 3, 4, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    states = [
        (torch.randn(3, 4, dtype=torch.float64, requires_grad=True), torch.randn(3, 4, dtype=torch.float64))
        for _ in range(2)
    ]
    with torch.no_grad():
        inputs[1].copy_(inputs[0])
        states[1][0].copy_(states[0][0])
        states[1][1].copy_(states[0][1])
    states[0][1].requires_grad_(True)
    states[1][1].requires_grad_(True)
    fast, (v_fast, i_fast) = leaky_integrator_scan(inputs[0], p, dt, states[0])
    slow, v_slow, i_slow = _loop(inputs[1], *states[1], p, dt)
    torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(v_fast, v_slow, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(i_fast, i_slow, rtol=1e-12, atol=1e-12)
    weights = torch.randn(steps, 3, 4, dtype=torch.float64)
    ((fast * weights).sum() + (2 * v_fast + 3 * i_fast).sum()).backward()
    ((slow * weights).sum() + (2 * v_slow + 3 * i_slow).sum()).backward()
    for a, b in ((inputs[0], inputs[1]), (states[0][0], states[1][0]), (states[0][1], states[1][1])):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-12)


def test_sparse_input_projection_equals_the_dense_product_and_its_gradient():
    torch.manual_seed(0)
    x = (torch.rand(300, 8, 2450) < 0.015).float() * torch.randint(1, 4, (300, 8, 2450)).float()
    weight = torch.randn(100, 2450, requires_grad=True)
    dense_weight = weight.detach().clone().requires_grad_(True)
    sparse = input_projection(x, weight)
    dense = torch.nn.functional.linear(x, dense_weight)
    torch.testing.assert_close(sparse, dense, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(dense)
    sparse.backward(grad)
    dense.backward(grad)
    torch.testing.assert_close(weight.grad, dense_weight.grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.int16, torch.uint8])  # the loaders' count dtypes
@pytest.mark.parametrize("shape", [(300, 8, 2450), (4, 2, 30)])  # sparse path, dense path
def test_integer_counts_project_like_their_float_copy(shape, dtype):
    """The loaders' int16 / uint8 frames go straight in: same values and weight gradient as float32."""
    torch.manual_seed(2)
    counts = ((torch.rand(shape) < 0.015) * torch.randint(1, 4, shape)).to(dtype)
    weight = torch.randn(100, shape[-1], requires_grad=True)
    float_weight = weight.detach().clone().requires_grad_(True)
    from_counts = input_projection(counts, weight)
    from_float = input_projection(counts.float(), float_weight)
    assert from_counts.dtype == torch.float32
    torch.testing.assert_close(from_counts, from_float, rtol=0, atol=0)
    grad = torch.randn_like(from_float)
    from_counts.backward(grad)
    from_float.backward(grad)
    torch.testing.assert_close(weight.grad, float_weight.grad, rtol=0, atol=0)


def test_boolean_input_is_refused():
    with pytest.raises(TypeError, match="integer counts, found torch.bool"):
        input_projection(torch.zeros(2, 3, dtype=torch.bool), torch.randn(4, 3))


def _reference_scan(current, weights, p, dt):
    """The step-by-step autograd graph of lif_recurrent_step (surrogate and detached reset)."""
    from event_lightning.nn.lif import lif_recurrent_step

    z = torch.zeros_like(current[0])
    v, i = z + p.v_leak, z
    spikes = []
    for step_current in current.unbind(0):
        z, v, i = lif_recurrent_step(step_current, z, v, i, weights, p, dt)
        spikes.append(z)
    return torch.stack(spikes), (z, v, i)


@pytest.mark.parametrize("leak_reset", [(0.0, 0.0), (0.1, -0.2)])
def test_fused_recurrent_scan_equals_the_step_loop(leak_reset):
    """Forward bit for bit, with and without gradient; gradients to float rounding (the fused
    backward sums the recurrent weight gradient over all steps in one matmul)."""
    from event_lightning.nn.lif import LIFParameters, LIFRecurrent

    torch.manual_seed(1)
    v_leak, v_reset = leak_reset
    p = LIFParameters(v_th=0.05, v_leak=v_leak, v_reset=v_reset, alpha=20.0)
    layer = LIFRecurrent(12, 12, p, dt=1e-3)
    cells = LIFScanCells(layer.step, layer.grad_step)
    current = torch.randn(60, 5, 12) * 5
    weights = torch.randn(12, 12) * 0.5
    reference_current = current.clone().requires_grad_(True)
    reference_weights = weights.clone().requires_grad_(True)
    reference_spikes, reference_state = _reference_scan(reference_current, reference_weights, p, 1e-3)
    with torch.no_grad():
        plain_spikes, plain_state = lif_recurrent_scan(current, weights, cells)
    fused_current = current.clone().requires_grad_(True)
    fused_weights = weights.clone().requires_grad_(True)
    fused_spikes, fused_state = lif_recurrent_scan(fused_current, fused_weights, cells)
    assert "LIFRecurrentScan" in type(fused_spikes.grad_fn).__name__ and 0.05 < reference_spikes.mean() < 0.9
    for spikes, state in ((plain_spikes, plain_state), (fused_spikes, fused_state)):
        assert torch.equal(spikes.detach(), reference_spikes.detach())
        for ours, reference in zip(state, reference_state, strict=True):
            torch.testing.assert_close(ours.detach(), reference.detach(), rtol=0, atol=0)
    grads = [torch.randn(60, 5, 12), torch.randn(5, 12), torch.randn(5, 12), torch.randn(5, 12)]
    torch.autograd.backward([fused_spikes, *fused_state], grads)
    torch.autograd.backward([reference_spikes, *reference_state], grads)
    torch.testing.assert_close(fused_current.grad, reference_current.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fused_weights.grad, reference_weights.grad, rtol=1e-5, atol=1e-4)
