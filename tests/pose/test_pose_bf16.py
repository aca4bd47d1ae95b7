"""bf16-mixed against fp32 over T = 500 steps: spiking state, traces and heatmap decoding stay float32.

Under autocast only the convolutions run in bf16. Each spiking layer is compared on the inputs of
the fp32 run (its own conv in bf16, its potential in float32): its spikes and membrane potentials
must stay within 0.5 % and 1 % of fp32. Whole networks are not compared end to end: a randomly
initialised 9-layer SNN is chaotic, a single spike flipped in the first layer (any bf16 conv
flips a few in 10^4) multiplies about fivefold per layer, which says nothing about precision.
A bf16 potential (what autocast gave before) fails the same bound, so the bound can fail.
"""

from __future__ import annotations

import pytest
import torch

from event_lightning.nn.pose import (
    HybridCNNSNN,
    LIFParams,
    PoseUNetCNN,
    SpikingPoseUNet,
    argmax_decode,
    leaky_integrate,
    lif_step,
    xavier_init,
)
from event_lightning.nn.pose.hybrid import decaying_residual

STEPS, WIDTH = 500, 4


pytestmark = pytest.mark.usefixtures("single_thread")


def _bf16():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def _calibrated(net: torch.nn.Module, run) -> None:
    """BatchNorm running statistics of this input (fresh ones make every layer silent), then eval mode.

    One training-mode window is ``STEPS`` momentum updates, which is enough to converge.
    """
    net.train()
    with torch.no_grad():
        run()
    net.eval()


def _record(snn: SpikingPoseUNet, run) -> dict[str, dict[str, torch.Tensor]]:
    """Per spiking layer of an fp32 run: conv input, LIF input currents, initial potential, spikes, potential."""
    seen: dict[str, dict[str, torch.Tensor]] = {}
    handles = []
    for name, block in snn.spiking_layers().items():
        layer = seen.setdefault(name, {})
        handles.append(block.conv.register_forward_pre_hook(lambda m, a, layer=layer: layer.update(conv_in=a[0])))
        handles.append(
            block.lif.register_forward_pre_hook(
                lambda m, a, layer=layer: layer.update(currents=a[0], v0=a[1] if len(a) > 1 else None)
            )
        )
        handles.append(block.lif.register_forward_hook(lambda m, a, o, layer=layer: layer.update(spikes=o[0], v=o[1])))
    with torch.no_grad():
        run()
    for handle in handles:
        handle.remove()
    return seen


def _membranes(currents: torch.Tensor, v0: torch.Tensor | None, resets: torch.Tensor, params, dtype) -> torch.Tensor:
    """Charged potentials ``[T, ...]`` of a LIF held in ``dtype``, reset by the given spikes (the fp32
    run's), so the trajectory differs from fp32 only by arithmetic, not by a flipped spike."""
    v = torch.zeros_like(currents[0], dtype=dtype) if v0 is None else v0.to(dtype)
    charged = []
    for x, s in zip(currents, resets, strict=True):
        v = v + (x.to(dtype) - v) / params.tau
        charged.append(v)
        v = v - s.to(dtype) * params.v_threshold
    return torch.stack(charged)


def _layer_drift(snn: SpikingPoseUNet, seen: dict, v0_mixed: dict[str, torch.Tensor] | None = None) -> dict:
    """Per layer, on the inputs of the fp32 run: spikes flipped and membrane error of bf16-mixed
    against fp32, and the same with the potential held in bf16 (the control)."""
    drift = {}
    params = snn.lif_params
    for name, block in snn.spiking_layers().items():
        layer = seen[name]
        conv_in = layer["conv_in"].unflatten(0, (STEPS, -1))
        v0 = layer["v0"] if v0_mixed is None else v0_mixed.get(name)
        with torch.no_grad():
            extra = layer["currents"] - block.currents(conv_in)  # what the forward adds (res2: the block input)
            with _bf16():
                currents = block.currents(conv_in) + extra
                spikes, v = block.lif(currents, v0)
            reference = _membranes(layer["currents"], layer["v0"], layer["spikes"], params, torch.float32)
            mixed = _membranes(currents, v0, layer["spikes"], params, torch.float32)
            half = _membranes(currents, v0, layer["spikes"], params, torch.bfloat16)
            v_half = torch.zeros_like(v, dtype=torch.bfloat16) if v0 is None else v0.bfloat16()
            half_spikes = []
            for x in currents:
                s, v_half = lif_step(x, v_half, params)
                half_spikes.append(s)
        assert currents.dtype == torch.float32 and v.dtype == torch.float32 and spikes.dtype == torch.float32
        drift[name] = {
            "flipped": _flipped(spikes, layer["spikes"]),
            "membrane": _relative(mixed, reference),
            "flipped_bf16_state": _flipped(torch.stack(half_spikes), layer["spikes"]),
            "membrane_bf16_state": _relative(half, reference),
        }
    return drift


def _flipped(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a != b).double().mean().item()


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def _check(drift: dict[str, dict[str, float]]) -> None:
    print({name: {key: f"{value:.3%}" for key, value in values.items()} for name, values in drift.items()})
    for name, values in drift.items():
        assert values["flipped"] < 0.005, f"{name}: {values['flipped']:.2%} of spikes flipped under bf16-mixed"
        assert values["membrane"] < 0.01, f"{name}: membrane potentials {values['membrane']:.2%} off under bf16-mixed"


def _events(seed: int, size: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.poisson(torch.full((STEPS, 1, 2, size, size), 0.3), generator=generator)


def test_snn_layers_stay_within_bounds_of_fp32_over_500_steps_in_bf16():
    torch.manual_seed(0)
    snn = SpikingPoseUNet(2, 13, WIDTH, LIFParams(tau=2.0), tail="integrator")
    xavier_init(snn)
    x_seq = _events(1, 16)
    _calibrated(snn, lambda: snn(x_seq))
    seen = _record(snn, lambda: snn(x_seq))
    assert min(layer["spikes"].mean().item() for layer in seen.values()) > 0.005  # every layer fires
    _check(_layer_drift(snn, seen))


def test_hybrid_snn_layers_and_output_stay_within_bounds_of_fp32_over_500_steps_in_bf16():
    torch.manual_seed(0)
    cnn, snn = PoseUNetCNN(20, 13, WIDTH), SpikingPoseUNet(2, 13, WIDTH, LIFParams(tau=3.0), tail="conv")
    hybrid = HybridCNNSNN(cnn, snn)
    for module in (cnn, snn, hybrid.heads):
        xavier_init(module)
    x_seq = _events(2, 32)  # the CNN needs multiples of 32
    x_cnn = torch.poisson(torch.full((1, 20, 32, 32), 0.5), generator=torch.Generator().manual_seed(3))
    _calibrated(hybrid, lambda: hybrid(x_seq, x_cnn))
    seen = _record(snn, lambda: hybrid(x_seq, x_cnn))
    with torch.no_grad(), _bf16():
        v0 = hybrid.initial_states(hybrid.run_cnn(x_cnn)[1])
    assert all(v.dtype == torch.float32 for v in v0.values())
    _check(_layer_drift(snn, seen, v0))


@pytest.mark.parametrize("trace", ["decaying_residual", "leaky_integrate"])
def test_output_traces_accumulate_in_float32_under_autocast(trace):
    """The hybrid's decaying residual and the pure SNN's integrator over 500 steps, as one matmul:
    float32 under autocast and within 1e-6 of float64 (a bf16 matmul is ~1e-3 off)."""
    generator = torch.Generator().manual_seed(4)
    init = torch.randn(2, 13, 8, 8, generator=generator)
    increments = torch.randn(STEPS, 2, 13, 8, 8, generator=generator) * 0.1

    def run(x, y0):
        return decaying_residual(y0, x, 0.99) if trace == "decaying_residual" else leaky_integrate(x, 2.0, y0)

    reference = run(increments.double(), init.double())
    with _bf16():
        ours = run(increments, init)
    assert ours.dtype == torch.float32
    assert _relative(ours, reference) < 1e-6
    rounded = increments.bfloat16()  # bf16 increments (a bf16 conv's output) are accumulated in float32 too
    with _bf16():
        ours = run(rounded, init)
    assert ours.dtype == torch.float32
    assert _relative(ours, run(rounded.double(), init.double())) < 1e-6


def test_a_trace_accumulated_in_bf16_drifts_by_percents():
    """Why the traces are float32: ``y_t = 0.99 y_{t-1} + o_t`` held in bf16 over 500 steps."""
    generator = torch.Generator().manual_seed(4)
    init = torch.randn(2, 13, 8, 8, generator=generator)
    increments = torch.randn(STEPS, 2, 13, 8, 8, generator=generator).bfloat16() * 0.1
    reference = decaying_residual(init.double(), increments.double(), 0.99)
    y, half = init.bfloat16(), []
    for x in increments:
        y = 0.99 * y + x
        half.append(y)
    assert _relative(torch.stack(half), reference) > 0.01


def test_heatmaps_are_float32_under_autocast_so_the_argmax_has_no_ties():
    torch.manual_seed(5)
    cnn = PoseUNetCNN(20, 13, WIDTH)
    xavier_init(cnn, head=cnn.head, head_div=2500.0)
    x_cnn = torch.rand(2, 20, 32, 32) * 3
    with torch.no_grad():
        reference = cnn(x_cnn)
        with _bf16():
            heatmaps = cnn(x_cnn)
    assert heatmaps.dtype == torch.float32
    # the damped head's maps are nearly flat: in bf16 many pixels tie at the maximum
    ties = (reference.bfloat16().flatten(-2) == reference.bfloat16().flatten(-2).amax(-1, keepdim=True)).sum(-1)
    assert ties.max() > 1
    flat = heatmaps.flatten(-2)
    assert ((flat == flat.amax(-1, keepdim=True)).sum(-1) == 1).all()
    assert argmax_decode(heatmaps).dtype == torch.get_default_dtype()
