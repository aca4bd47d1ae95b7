"""``python -m event_lightning.export``: checkpoint -> .nir file, per spiking model, and the refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nir
import pytest
import pytorch_lightning as pl
import torch
import yaml

from event_lightning.export import main
from event_lightning.models.event2vec import Event2VecClassifier
from event_lightning.models.hgvae import HybridGuidedVAE
from event_lightning.models.lif_classifier import LIFClassifier
from event_lightning.models.pose import PoseCNN, PoseHybridCNNSNN, PoseSNN
from event_lightning.nir import NIRExecutor, decolle_graph_input, load_nir
from event_lightning.nir.checkpoint import export_lightning_module

REPO = Path(__file__).resolve().parents[2]


def _save(model: pl.LightningModule, path: Path, class_path: bool = True) -> Path:
    """A checkpoint as our LightningCLI writes it: state dict, hyperparameters with the class path."""
    hyper_parameters = dict(model.hparams)
    if class_path:
        hyper_parameters["_class_path"] = f"{type(model).__module__}.{type(model).__qualname__}"
        hyper_parameters["_instantiator"] = "pytorch_lightning.cli.instantiate_module"
    checkpoint = {
        "state_dict": model.state_dict(),
        "hyper_parameters": hyper_parameters,
        "pytorch-lightning_version": pl.__version__,
    }
    torch.save(checkpoint, path)
    return path


def _spikes(shape: tuple[int, ...], p: float, seed: int) -> torch.Tensor:
    return (torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < p).float()


def test_export_lif_classifier_checkpoint(tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    model = LIFClassifier(sensor_size=[5, 4, 2], num_classes=3, hidden_features=16, v_th=0.3)
    ckpt = _save(model, tmp_path / "lif.ckpt")
    out = tmp_path / "export" / "lif.nir"
    assert main(["--ckpt_path", str(ckpt), "--output", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    graph = nir.read(out)
    assert tuple(graph.nodes["input"].input_type["input"]) == (2, 4, 5)  # [P, H, W] of sensor [W, H, P]
    frames = _spikes((30, 2, 2, 4, 5), 0.3, seed=1)
    with torch.no_grad():
        expected = model.net(frames)
        spikes, _ = model.net.lif(frames.flatten(2))
        got = NIRExecutor(graph)(frames, record=["lif"])
    assert spikes.sum() > 0 and torch.equal(got["lif"], spikes)
    torch.testing.assert_close(got["output"], expected, rtol=0, atol=1e-5)


def test_export_lif_classifier_refuses_other_dt(tmp_path: Path, capsys) -> None:
    ckpt = _save(LIFClassifier(sensor_size=[5, 4, 2], num_classes=3, hidden_features=8), tmp_path / "lif.ckpt")
    assert main(["--ckpt_path", str(ckpt), "--output", str(tmp_path / "x.nir"), "--dt", "0.002"]) == 1
    assert "dt=0.001" in capsys.readouterr().err
    assert not (tmp_path / "x.nir").exists()


def test_export_hgvae_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(2)
    model = HybridGuidedVAE(
        num_classes=3,
        conv_channels=[4, 6],
        pool_sizes=[2, 1],
        kernel_size=3,
        out_features=8,
        dimz=10,
        classifier_hidden=8,
        ngf=2,
        alpha=0.9,
        beta=0.85,
    )
    with torch.no_grad():  # lively spikes without the LSUV pass
        for layer in model.net.encoder.layers:
            layer.base_layer.weight.mul_(3.0)
            layer.base_layer.bias.uniform_(0.0, 0.3)
    out = tmp_path / "hgvae.nir"
    assert main(["--ckpt_path", str(_save(model, tmp_path / "hgvae.ckpt")), "--output", str(out)]) == 0
    x = _spikes((6, 2, 2, 32, 32), 0.2, seed=3)
    encoder = model.net.encoder
    with torch.no_grad():
        expected = encoder(x)
        got = load_nir(str(out))(decolle_graph_input(encoder, x), record=["layer0_pool_spike"])
    assert got["layer0_pool_spike"].sum() > 0
    torch.testing.assert_close(got["output"][-1], expected, rtol=0, atol=1e-5)


def test_export_pose_snn_checkpoint_from_config_yaml(tmp_path: Path) -> None:
    """A checkpoint without ``_class_path`` finds its class in the run's config.yaml (one folder up)."""
    torch.manual_seed(4)
    model = PoseSNN(base_channels=2, n_joints=3, sensor_size=[16, 8, 2]).eval()
    with torch.no_grad():  # BatchNorm statistics as after training, and enough drive to spike
        for block in model.net.spiking_layers().values():
            block.conv.weight.mul_(4.0)
            block.bn.running_var.uniform_(0.5, 2.0)
            block.bn.bias.uniform_(0.2, 1.0)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"model": {"class_path": "event_lightning.models.pose.PoseSNN"}}))
    ckpt = _save(model, run / "checkpoints" / "last.ckpt", class_path=False)
    out = tmp_path / "pose.nir"
    assert (
        main(
            [
                "--ckpt_path",
                str(ckpt),
                "--output",
                str(out),
                "--dt",
                "0.01",
                "--pose_outputs",
                "down1",
                "res2",
            ]
        )
        == 0
    )
    graph = nir.read(out)
    assert graph.metadata["dt"] == pytest.approx(0.01)
    assert tuple(graph.nodes["input"].input_type["input"]) == (2, 8, 16)  # (C, H, W) from sensor [W, H, P]
    assert sorted(n for n, node in graph.nodes.items() if isinstance(node, nir.Output)) == [
        "down1_out",
        "res2_out",
    ]
    x = _spikes((8, 2, 2, 8, 16), 0.5, seed=5)
    spikes: dict[str, torch.Tensor] = {}
    for name in ("down1", "res2"):
        getattr(model.net, name).lif.register_forward_hook(lambda m, i, o, name=name: spikes.__setitem__(name, o[0]))
    with torch.no_grad():
        model.net(x)
        got = NIRExecutor(graph)(x)
    assert spikes["down1"].sum() > 0
    assert torch.equal(got["down1_out"], spikes["down1"]) and torch.equal(got["res2_out"], spikes["res2"])


def test_export_hybrid_cnn_snn_exports_its_snn() -> None:
    model = PoseHybridCNNSNN(base_channels=2, cnn_base_channels=2, sensor_size=[32, 32, 2]).eval()
    with torch.no_grad():
        for block in model.net.snn.spiking_layers().values():
            block.conv.weight.mul_(4.0)
            block.bn.bias.uniform_(0.2, 1.0)
    graph = export_lightning_module(model, dt=0.01)
    assert graph.metadata["model"].startswith("SpikingPoseUNet")
    x = _spikes((6, 1, 2, 32, 32), 0.5, seed=7)
    spikes: dict[str, torch.Tensor] = {}
    model.net.snn.down1.lif.register_forward_hook(lambda m, i, o: spikes.__setitem__("down1", o[0]))
    with torch.no_grad():
        model.net.snn(x)  # the SNN from rest: the CNN's initial potentials are not part of the graph
        got = NIRExecutor(graph)(x)
    assert spikes["down1"].sum() > 0 and torch.equal(got["down1_out"], spikes["down1"])
    with pytest.raises(ValueError, match="checkpoint X: PoseCNN has no spiking network"):
        export_lightning_module(PoseCNN(base_channels=2), source="checkpoint X")


def test_export_refuses_model_without_spiking_network(tmp_path: Path, capsys) -> None:
    model = Event2VecClassifier(num_classes=3, d_model=16, n_head=2, d_feedforward=16, n_layers=1)
    ckpt = _save(model, tmp_path / "e2v.ckpt")
    assert main(["--ckpt_path", str(ckpt), "--output", str(tmp_path / "e2v.nir")]) == 1
    err = capsys.readouterr().err
    assert str(ckpt) in err and "Event2VecClassifier has no spiking network" in err
    assert not (tmp_path / "e2v.nir").exists()


def test_export_reports_missing_class_and_file(tmp_path: Path, capsys) -> None:
    ckpt = _save(LIFClassifier(sensor_size=[5, 4, 2], num_classes=3, hidden_features=8), tmp_path / "a.ckpt", False)
    assert main(["--ckpt_path", str(ckpt), "--output", str(tmp_path / "a.nir")]) == 1
    assert "_class_path" in capsys.readouterr().err
    assert (
        main(
            [
                "--ckpt_path",
                str(ckpt),
                "--output",
                str(tmp_path / "a.nir"),
                "--model_class",
                "event_lightning.models.lif_classifier.LIFClassifier",
            ]
        )
        == 0
    )
    assert main(["--ckpt_path", str(tmp_path / "missing.ckpt"), "--output", str(tmp_path / "b.nir")]) == 1
    assert "missing.ckpt does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_export_after_cli_training(tmp_path: Path, quick, tiny_digits: Path) -> None:
    """End to end: one CLI training step of the quickstart (LIF classifier), then the export subprocess."""
    from event_lightning.cli import main as cli_main

    runs = tmp_path / "runs"
    args = quick.args(
        runs,
        tiny_digits,
        "--trainer.max_epochs",
        "1",
        "--trainer.limit_train_batches",
        "1",
        "--trainer.limit_val_batches",
        "1",
    )
    cli_main(["fit", *args])
    ckpt = next(runs.rglob("last.ckpt"))
    out = tmp_path / "quickstart.nir"
    result = subprocess.run(
        [sys.executable, "-m", "event_lightning.export", "--ckpt_path", str(ckpt), "--output", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    model = LIFClassifier.load_from_checkpoint(ckpt, map_location="cpu")
    width, height, polarities = model.hparams.sensor_size
    frames = _spikes((20, 2, polarities, height, width), 0.1, seed=6)
    with torch.no_grad():
        expected = model.net(frames)
        got = load_nir(str(out))(frames)["output"]
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
