"""The LIF layer and readout against norse 1.1 on the same weights: forward values and gradients."""

import pytest
import torch

norse = pytest.importorskip("norse.torch")
from norse.torch.functional.leaky_integrator import LIParameters as NorseLIParameters  # noqa: E402
from norse.torch.functional.lif import LIFParameters as NorseLIFParameters  # noqa: E402

from event_lightning.nn.lif import LIFClassifierNet, LIFParameters, LIParameters  # noqa: E402
from event_lightning.nn.surrogate import superspike  # noqa: E402


def _norse_tutorial_net(ours: LIFClassifierNet, p: LIFParameters, readout: LIParameters, dt: float):
    inputs, hidden = ours.lif.input_weights.shape[1], ours.lif.input_weights.shape[0]
    cell = norse.LIFRecurrentCell(
        inputs,
        hidden,
        p=NorseLIFParameters(
            tau_syn_inv=torch.as_tensor(p.tau_syn_inv),
            tau_mem_inv=torch.as_tensor(p.tau_mem_inv),
            v_th=torch.as_tensor(p.v_th),
            alpha=torch.as_tensor(p.alpha),
        ),
        dt=dt,
    )
    fc = torch.nn.Linear(hidden, ours.fc_out.out_features, bias=False)
    li = norse.LICell(
        p=NorseLIParameters(
            tau_syn_inv=torch.as_tensor(readout.tau_syn_inv), tau_mem_inv=torch.as_tensor(readout.tau_mem_inv)
        ),
        dt=dt,
    )
    with torch.no_grad():
        cell.input_weights.copy_(ours.lif.input_weights)
        cell.recurrent_weights.copy_(ours.lif.recurrent_weights)
        fc.weight.copy_(ours.fc_out.weight)

    def forward(x):
        lif_state = li_state = None
        voltages = []
        for x_t in x:
            z, lif_state = cell(x_t.flatten(1), lif_state)
            v, li_state = li(fc(z), li_state)
            voltages.append(v)
        return torch.stack(voltages)

    return forward, (cell.input_weights, cell.recurrent_weights, fc.weight)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tutorial_network_matches_norse_forward_and_gradients(seed):
    torch.manual_seed(seed)
    dt = 1e-3
    # alpha=1: norse 1.1.0 drops alpha from SuperSpike's backward, so only alpha=1 compares gradients.
    p = LIFParameters(tau_syn_inv=100.0, tau_mem_inv=100.0, v_th=0.3, alpha=1.0)
    readout = LIParameters()
    ours = LIFClassifierNet(2 * 7 * 5, 20, 4, p, readout, dt)
    reference, reference_params = _norse_tutorial_net(ours, p, readout, dt)
    x = (torch.rand(40, 3, 2, 5, 7) < 0.3).float()

    ours_v, norse_v = ours(x), reference(x)
    assert norse_v.abs().max() > 0.01  # the network actually does something
    torch.testing.assert_close(ours_v, norse_v, rtol=1e-5, atol=1e-5)

    weights = torch.randn(4)
    (ours_v.max(0).values @ weights).sum().backward()
    (norse_v.max(0).values @ weights).sum().backward()
    ours_params = (ours.lif.input_weights, ours.lif.recurrent_weights, ours.fc_out.weight)
    for mine, theirs in zip(ours_params, reference_params, strict=True):
        assert theirs.grad.abs().max() > 0
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-4, atol=1e-5)
    assert torch.all(ours.lif.recurrent_weights.grad.diagonal() == 0)


def test_superspike_gradient_uses_alpha():
    x = torch.tensor([-0.1, 0.0, 0.05], requires_grad=True)
    superspike(x, 100.0).sum().backward()
    torch.testing.assert_close(x.grad, 1 / (100 * x.detach().abs() + 1) ** 2)
    assert superspike(torch.tensor([0.0, 1e-6])).tolist() == [0.0, 1.0]  # strict threshold


def test_no_autapses_and_norse_initialisation_scale():
    torch.manual_seed(0)
    net = LIFClassifierNet(2450, 100, 4, LIFParameters(), LIParameters(), 1e-3)
    assert torch.all(net.lif.recurrent_weights.diagonal() == 0)
    assert net.lif.input_weights.std().item() == pytest.approx((2 / 100) ** 0.5, rel=0.02)
    assert sum(p.numel() for p in net.parameters()) == 100 * 2450 + 100 * 100 + 4 * 100
