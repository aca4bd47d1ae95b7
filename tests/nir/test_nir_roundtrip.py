"""Round trips network -> NIR graph -> file -> NIR graph -> NIRExecutor for the three spiking networks,
compared with the original networks on random weights and random input spikes."""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import pytest
import torch
from torch import nn

from event_lightning.nir import (
    NIRExecutor,
    decolle_graph_input,
    export_decolle_encoder,
    export_lif_classifier,
    export_pose_snn,
    graph_dt,
    load_nir,
)
from event_lightning.nn.decolle import DecolleEncoder, DecolleEncoderConfig
from event_lightning.nn.lif import LIFClassifierNet, LIFParameters, LIParameters
from event_lightning.nn.pose.lif import LIFParams
from event_lightning.nn.pose.snn_unet import SpikingPoseUNet


def _roundtrip(graph: nir.NIRGraph, tmp_path: Path) -> NIRExecutor:
    path = tmp_path / "model.nir"
    nir.write(path, graph)
    return load_nir(str(path))


def _types(graph: nir.NIRGraph) -> dict[str, str]:
    return {name: type(node).__name__ for name, node in graph.nodes.items()}


def _spikes(shape: tuple[int, ...], p: float, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=generator) < p).float()


# ------------------------------------------------------------------ LIF classifier


def _lif_net(lif: LIFParameters, seed: int = 0) -> LIFClassifierNet:
    torch.manual_seed(seed)
    return LIFClassifierNet(2 * 6 * 5, 24, 4, lif, LIParameters(tau_syn_inv=200.0, tau_mem_inv=100.0), 1e-3)


@pytest.mark.parametrize(
    "lif",
    [
        LIFParameters(tau_syn_inv=100.0, tau_mem_inv=100.0, v_th=0.3),  # the tutorial's constants
        LIFParameters(tau_syn_inv=250.0, tau_mem_inv=80.0, v_leak=0.05, v_th=0.4, v_reset=-0.1),
    ],
)
def test_lif_classifier_roundtrip(tmp_path: Path, lif: LIFParameters) -> None:
    net = _lif_net(lif)
    frames = _spikes((50, 3, 2, 6, 5), 0.3, seed=1)
    with torch.no_grad():
        voltages = net(frames)
        spikes, _ = net.lif(frames.flatten(2))
    executor = _roundtrip(export_lif_classifier(net, (2, 6, 5)), tmp_path)
    with torch.no_grad():
        out = executor(frames, record=["lif"])
    assert 0 < spikes.sum() < spikes.numel() / 2  # a non-trivial spike train
    assert torch.equal(out["lif"], spikes)
    assert out["output"].shape == voltages.shape == (50, 3, 4)
    torch.testing.assert_close(out["output"], voltages, rtol=0, atol=1e-5)
    assert voltages.abs().max() > 1e-2


def test_lif_classifier_graph(tmp_path: Path) -> None:
    net = _lif_net(LIFParameters(tau_syn_inv=100.0, tau_mem_inv=50.0, v_th=0.3))
    graph = nir.read(_write(export_lif_classifier(net, (2, 6, 5)), tmp_path))
    assert _types(graph) == {
        "input": "Input",
        "flatten": "Flatten",
        "input_weights": "Linear",
        "lif": "CubaLIF",
        "recurrent_weights": "Linear",
        "fc_out": "Linear",
        "readout": "CubaLI",
        "output": "Output",
    }
    assert set(graph.edges) == {
        ("input", "flatten"),
        ("flatten", "input_weights"),
        ("input_weights", "lif"),
        ("lif", "recurrent_weights"),
        ("recurrent_weights", "lif"),
        ("lif", "fc_out"),
        ("fc_out", "readout"),
        ("readout", "output"),
    }
    assert graph_dt(graph) == pytest.approx(1e-3)
    lif, readout = graph.nodes["lif"], graph.nodes["readout"]
    np.testing.assert_allclose(lif.tau_syn, 0.01)
    np.testing.assert_allclose(lif.tau_mem, 0.02)
    np.testing.assert_allclose(lif.w_in, 10.0)  # tau_syn / dt
    np.testing.assert_allclose(lif.v_threshold, 0.3)
    np.testing.assert_allclose(readout.tau_syn, 1 / 200)
    np.testing.assert_allclose(readout.w_in, 5.0)
    recurrent = graph.nodes["recurrent_weights"].weight
    assert np.all(np.diag(recurrent) == 0)  # no autapses
    np.testing.assert_array_equal(graph.nodes["input_weights"].weight, net.lif.input_weights.detach().numpy())


def test_lif_classifier_rejects_wrong_input_shape() -> None:
    with pytest.raises(ValueError, match="60 input features"):
        export_lif_classifier(_lif_net(LIFParameters()), (2, 6, 6))


def test_cuba_lif_matches_norse(tmp_path: Path) -> None:
    """The executor's CubaLIF under the export's parameter mapping is norse's LIFCell."""
    norse = pytest.importorskip("norse.torch")
    weight = torch.randn(8, 5, generator=torch.Generator().manual_seed(3))
    lif = LIFParameters(tau_syn_inv=150.0, tau_mem_inv=120.0, v_leak=0.02, v_th=0.25, v_reset=-0.05)
    dt, n = 1e-3, 8

    def full(value: float) -> np.ndarray:
        return np.full(n, value)

    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([5])}),
            "w": nir.Linear(weight=weight.numpy()),
            "lif": nir.CubaLIF(
                tau_syn=full(1 / lif.tau_syn_inv),
                tau_mem=full(1 / lif.tau_mem_inv),
                r=full(1.0),
                v_leak=full(lif.v_leak),
                v_threshold=full(lif.v_th),
                v_reset=full(lif.v_reset),
                w_in=full(1 / (dt * lif.tau_syn_inv)),
            ),
            "output": nir.Output(output_type={"output": np.array([n])}),
        },
        edges=[("input", "w"), ("w", "lif"), ("lif", "output")],
        metadata={"dt": dt},
    )
    x = _spikes((60, 4, 5), 0.5, seed=4)
    ours = _roundtrip(graph, tmp_path)(x)["output"]
    cell = norse.LIFCell(
        norse.LIFParameters(
            tau_syn_inv=torch.tensor(lif.tau_syn_inv),
            tau_mem_inv=torch.tensor(lif.tau_mem_inv),
            v_leak=torch.tensor(lif.v_leak),
            v_th=torch.tensor(lif.v_th),
            v_reset=torch.tensor(lif.v_reset),
        ),
        dt=dt,
    )
    state, reference = None, []
    for step in x:
        z, state = cell(step @ weight.T, state)
        reference.append(z)
    reference = torch.stack(reference)
    assert reference.sum() > 0
    assert torch.equal(ours, reference)


def test_norse_importer_reads_exported_cuba_lif(tmp_path: Path) -> None:
    """norse's own NIR importer (``norse.torch.from_nir``) runs the exported input projection and CubaLIF
    with the same spikes: the exported time constants and ``w_in`` mean the same to another backend."""
    norse = pytest.importorskip("norse.torch")
    net = _lif_net(LIFParameters(tau_syn_inv=100.0, tau_mem_inv=100.0, v_th=0.3))
    graph = nir.read(_write(export_lif_classifier(net), tmp_path))
    hidden = net.lif.input_weights.shape[0]
    feed_forward = nir.NIRGraph(  # the recurrent edge left out: norse's importer runs acyclic graphs
        nodes={
            "input": graph.nodes["input"],
            "input_weights": graph.nodes["input_weights"],
            "lif": graph.nodes["lif"],
            "output": nir.Output(output_type={"output": np.array([hidden])}),
        },
        edges=[("input", "input_weights"), ("input_weights", "lif"), ("lif", "output")],
        metadata=dict(graph.metadata),
    )
    x = _spikes((40, 3, net.lif.input_weights.shape[1]), 0.3, seed=9)
    module, state, reference = norse.from_nir(feed_forward, dt=graph_dt(graph)), None, []
    with torch.no_grad():
        for step in x:
            z, state = module(step, state)
            reference.append(z)
        ours = NIRExecutor(feed_forward)(x)["output"]
    reference = torch.stack(reference)
    assert reference.sum() > 0
    assert torch.equal(ours, reference)


def _write(graph: nir.NIRGraph, tmp_path: Path) -> Path:
    path = tmp_path / "graph.nir"
    nir.write(path, graph)
    return path


# ------------------------------------------------------------------ HG-VAE DECOLLE encoder


def _decolle(warmup: bool) -> DecolleEncoder:
    torch.manual_seed(5)
    config = DecolleEncoderConfig((2, 8, 8), (4, 6), (2, 1), 3, 10, (0.9, 0.85, 0.8), 0.8, warmup_first_step=warmup)
    encoder = DecolleEncoder(config)
    with torch.no_grad():  # orthogonal weights and zero biases spike little: scale up, add positive biases
        for layer in encoder.layers:
            layer.base_layer.weight.mul_(3.0)
            layer.base_layer.bias.uniform_(-0.1, 0.3)
    return encoder


@pytest.mark.parametrize("warmup", [True, False])
def test_decolle_encoder_roundtrip(tmp_path: Path, warmup: bool) -> None:
    encoder = _decolle(warmup)
    x = _spikes((12, 3, 2, 8, 8), 0.4, seed=6)
    sequence = decolle_graph_input(encoder, x)
    assert sequence.shape[0] == 12 + warmup
    # reference per-step values: the layers' own forward passes from zero state on that sequence
    reference_spikes, s = [], sequence
    with torch.no_grad():
        for layer in encoder.layers[:-1]:
            s, _, _ = layer(s)
            reference_spikes.append(s)
        _, reference_u, _ = encoder.layers[-1](s.flatten(2))
        last = encoder(x)
    executor = _roundtrip(export_decolle_encoder(encoder, dt=1e-3), tmp_path)
    with torch.no_grad():
        out = executor(sequence, record=["layer0_pool_spike", "layer1_spike"])
    for recorded, reference in zip((out["layer0_pool_spike"], out["layer1_spike"]), reference_spikes, strict=True):
        assert 0 < reference.sum() < reference.numel()
        assert torch.equal(recorded, reference)
    torch.testing.assert_close(out["output"], reference_u, rtol=0, atol=1e-5)
    torch.testing.assert_close(out["output"][-1], last, rtol=0, atol=1e-5)
    assert last.abs().max() > 0.1


def test_decolle_encoder_graph(tmp_path: Path) -> None:
    encoder = _decolle(True)
    graph = nir.read(_write(export_decolle_encoder(encoder, dt=2e-3), tmp_path))
    types = _types(graph)
    assert types["layer0_q"] == types["layer0_p"] == "LI"
    assert types["layer0_delay"] == "Delay"
    assert types["layer0_conv"] == types["layer1_conv"] == "Conv2d"
    assert types["layer0_spike"] == types["layer0_pool_spike"] == types["layer1_spike"] == "Threshold"
    assert types["layer0_pool"] == "SumPool2d"
    assert types["flatten"] == "Flatten"
    assert types["layer2_conv"] == "Affine"
    assert "layer1_pool" not in types and "layer2_spike" not in types
    assert ("layer0_spike", "layer0_pool") in graph.edges
    assert ("layer0_pool_spike", "layer1_q") in graph.edges
    assert ("layer1_spike", "flatten") in graph.edges and ("flatten", "layer2_q") in graph.edges
    assert ("layer2_conv", "output") in graph.edges
    np.testing.assert_allclose(graph.nodes["layer0_delay"].delay, 2e-3)
    np.testing.assert_allclose(graph.nodes["layer0_p"].tau, 2e-3 / (1 - 0.9))  # alpha of layer 0
    np.testing.assert_allclose(graph.nodes["layer2_p"].tau, 2e-3 / (1 - 0.8))
    np.testing.assert_allclose(graph.nodes["layer1_q"].tau, 2e-3 / (1 - 0.8))  # beta
    np.testing.assert_allclose(graph.nodes["layer0_pool_spike"].threshold, 0.5)
    assert tuple(graph.nodes["output"].output_type["output"]) == (10,)


# ------------------------------------------------------------------ pose SNN


def _pose(tau: float) -> SpikingPoseUNet:
    torch.manual_seed(7)
    net = SpikingPoseUNet(2, 3, 4, LIFParams(tau=tau, v_threshold=1.0), tail="integrator")
    with torch.no_grad():  # non-trivial BatchNorm statistics, and enough drive for the deep layers to spike
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(0.2, 1.2)
            elif isinstance(module, nn.Conv2d):
                module.weight.mul_(4.0)
    return net.eval()


@pytest.mark.parametrize("tau", [2.0, 3.0])
def test_pose_snn_roundtrip(tmp_path: Path, tau: float) -> None:
    net = _pose(tau)
    layers = ("static_conv", "down1", "down2", "down3", "res1", "res2")
    spikes: dict[str, torch.Tensor] = {}
    hooks = [
        getattr(net, name).lif.register_forward_hook(lambda m, i, o, name=name: spikes.__setitem__(name, o[0]))
        for name in layers
    ]
    x = _spikes((10, 2, 2, 16, 16), 0.3, seed=8)
    with torch.no_grad():
        v_last = net(x).v_last
    for hook in hooks:
        hook.remove()
    executor = _roundtrip(export_pose_snn(net, (2, 16, 16), dt=1e-2, outputs=layers), tmp_path)
    with torch.no_grad():
        out = executor(x, record=[f"{name}_lif" for name in layers])
    for name in layers:
        assert spikes[name].sum() > 0, name
        assert torch.equal(out[f"{name}_out"], spikes[name]), name
        # the LI holds the pre-reset potential: subtracting the last reset gives the network's state
        post_reset = out[f"{name}_lif"][-1] - out[f"{name}_out"][-1] * 1.0
        torch.testing.assert_close(post_reset, v_last[name], rtol=0, atol=1e-5)


def test_pose_snn_graph(tmp_path: Path) -> None:
    graph = nir.read(_write(export_pose_snn(_pose(2.0), (2, 16, 16), dt=1e-2), tmp_path))
    types = _types(graph)
    for name in ("static_conv", "down1", "down2", "down3", "res1", "res2"):
        assert types[f"{name}_conv"] == "Conv2d"
        assert types[f"{name}_lif"] == "LI"
        assert types[f"{name}_spike"] == "Threshold"
        assert types[f"{name}_reset"] == "Scale"
        assert (f"{name}_reset", f"{name}_lif") in graph.edges  # the soft reset, one step later
    assert ("down3_spike", "res2_lif") in graph.edges  # the residual into res2
    assert ("res1_spike", "res2_conv") in graph.edges
    assert sorted(n for n, t in types.items() if t == "Output") == [
        "down1_out",
        "down2_out",
        "down3_out",
        "res2_out",
        "static_conv_out",
    ]
    assert not any(name.startswith("up") for name in graph.nodes)
    np.testing.assert_allclose(graph.nodes["down1_lif"].tau, 2 * 1e-2)
    np.testing.assert_allclose(graph.nodes["down1_reset"].scale, -1.0)  # -(tau - 1) v_th
    assert tuple(graph.nodes["down3_out"].output_type["output"]) == (32, 2, 2)
    threshold = graph.nodes["res2_spike"].threshold
    assert np.all(threshold < 1.0) and np.all(np.nextafter(threshold, np.float32(2.0)) == np.float32(1.0))


@pytest.mark.parametrize("layer", ["up1", "up3", "tail"])
def test_pose_snn_rejects_upsampling_layers(layer: str) -> None:
    with pytest.raises(ValueError, match="bilinear x2 upsampling"):
        export_pose_snn(_pose(2.0), (2, 16, 16), outputs=("res2", layer))


def test_pose_snn_rejects_unknown_layer_and_bad_shape() -> None:
    with pytest.raises(ValueError, match="unknown layer 'down9'"):
        export_pose_snn(_pose(2.0), (2, 16, 16), outputs=("down9",))
    with pytest.raises(ValueError, match="3 channels"):
        export_pose_snn(_pose(2.0), (3, 16, 16))


# ------------------------------------------------------------------ executor semantics


def _chain(delay: float, dt: float | None) -> nir.NIRGraph:
    metadata = {} if dt is None else {"dt": dt}
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([3])}),
            "delay": nir.Delay(delay=np.full(3, delay)),
            "output": nir.Output(output_type={"output": np.array([3])}),
        },
        edges=[("input", "delay"), ("delay", "output")],
        metadata=metadata,
    )


def test_executor_delay_and_dt_errors(tmp_path: Path) -> None:
    x = torch.arange(12.0).reshape(4, 1, 3)
    out = _roundtrip(_chain(2e-3, 1e-3), tmp_path)(x)["output"]
    assert torch.equal(out[:2], torch.zeros(2, 1, 3)) and torch.equal(out[2:], x[:2])
    with pytest.raises(ValueError, match="whole number of steps"):
        NIRExecutor(_chain(1.5e-3, 1e-3))
    with pytest.raises(ValueError, match="pass dt"):
        NIRExecutor(_chain(1e-3, None))
    assert NIRExecutor(_chain(1e-3, None), dt=1e-3)(x)["output"][1].equal(x[0])


def test_executor_sums_inputs_and_delays_feedback() -> None:
    """A node with two inputs sums them; an edge closing a cycle carries the previous step's value:
    y[t] = x[t] + 0.5 y[t-1] through Input -> Scale(1) <- Scale(0.5) feedback."""
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([2])}),
            "sum": nir.Scale(scale=np.ones(2)),
            "feedback": nir.Scale(scale=np.full(2, 0.5)),
            "output": nir.Output(output_type={"output": np.array([2])}),
        },
        edges=[("input", "sum"), ("sum", "feedback"), ("feedback", "sum"), ("sum", "output")],
        metadata={"dt": 1e-3},
    )
    x = torch.tensor([[[1.0, 2.0]], [[0.0, 0.0]], [[4.0, 0.0]]])
    out = NIRExecutor(graph)(x)["output"]
    assert torch.equal(out[:, 0], torch.tensor([[1.0, 2.0], [0.5, 1.0], [4.25, 0.5]]))
