"""Firing rates, synaptic operations and the energy model of the pose reference."""

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from torch._dynamo.utils import counters
from torch.utils.data import DataLoader

from event_lightning.callbacks.energy import EnergyModel, SpikeEnergyMonitor, energy_report
from event_lightning.callbacks.pose_figures import PoseOverlayLogger
from event_lightning.models.pose import PoseCNN, PoseSNN
from event_lightning.nn.pose.lif import DecayInputLIF


def test_reference_power_figures():
    model = EnergyModel(pj_per_ac=0.38, pj_per_mac=1.645)
    ann = energy_report(0.0, 22.6e9, 100.0, model)
    assert ann["power_w"] == pytest.approx(3.718, abs=0.002)
    # Hybrid per 100 ms window: CNN + heads once (22.6 + 1.28 GMAC), SNN ops for ~3.0 mJ.
    snn_ops = 3.0e-3 / 0.38e-12
    hybrid = energy_report(snn_ops, 22.6e9 + 1.28e9, 10.0, model)
    assert hybrid["energy_mj_per_sample"] == pytest.approx(42.28, abs=0.05)
    assert hybrid["power_w"] == pytest.approx(0.423, abs=0.001)


def _samples(n: int, steps: int, size: int, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [
        {
            "events": (torch.rand(steps, 2, size, size, generator=g) < 0.3).float() * 3,
            "cnn_input": torch.rand(20, size, size, generator=g) * 2,
            "landmarks": torch.rand(steps, 13, 2, generator=g) * size,
            "cnn_landmarks": torch.rand(13, 2, generator=g) * size,
            "label_steps": torch.arange(steps),
        }
        for _ in range(n)
    ]


def _validate(model: pl.LightningModule, samples: list[dict], monitor: SpikeEnergyMonitor) -> dict:
    trainer = pl.Trainer(
        logger=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[monitor], accelerator="cpu"
    )
    return trainer.validate(model, dataloaders=DataLoader(samples, batch_size=2), verbose=False)[0]


def test_snn_rates_and_synaptic_operations_match_a_manual_count():
    torch.manual_seed(0)
    model = PoseSNN(base_channels=4, tau=1.5).eval()
    samples = _samples(3, 4, 32, seed=1)
    spikes: dict[str, list[torch.Tensor]] = {}
    originals = {}
    for name, block in model.net.spiking_layers().items():
        originals[name] = block.lif.forward

        def record(x_seq, v0=None, _name=name, _forward=block.lif.forward):
            out = _forward(x_seq, v0)
            spikes.setdefault(_name, []).append(out[0].detach())
            return out

        block.lif.forward = record
    monitor = SpikeEnergyMonitor(pj_per_ac=0.38, samples_per_second=10.0)
    metrics = _validate(model, samples, monitor)
    # Dense MACs per sample-step of each spiking layer, from the architecture (c = 4, 32 x 32).
    c, hw = 4, 32 * 32
    macs = {
        "static_conv": 2 * c * 25 * hw,
        "down1": c * 2 * c * 25 * hw // 4,
        "down2": 2 * c * 4 * c * 25 * hw // 16,
        "down3": 4 * c * 8 * c * 25 * hw // 64,
        "res1": 8 * c * 8 * c * 9 * hw // 64,
        "res2": 8 * c * 8 * c * 9 * hw // 64,
        "up1": 16 * c * 4 * c * 25 * hw // 16,
        "up2": 8 * c * 2 * c * 25 * hw // 4,
        "up3": 4 * c * c * 25 * hw,
    }
    expected_ops, rates = 0.0, []
    for name, seq in spikes.items():
        s = torch.cat(seq, 1)  # [T, N, C, H, W]
        rate_per_step = s.flatten(2).mean(2).mean(1)  # per step, averaged over samples and neurons
        assert metrics[f"val/firing_rate/{name}"] == pytest.approx(rate_per_step.mean().item(), rel=1e-5)
        rates.append(rate_per_step.mean().item())
        expected_ops += rate_per_step.sum().item() * macs[name]
    assert sum(rates) > 0
    assert metrics["val/firing_rate_mean"] == pytest.approx(sum(rates) / len(rates), rel=1e-5)
    assert metrics["val/synops_per_sample"] == pytest.approx(expected_ops, rel=1e-5)
    assert metrics["val/dense_macs_per_sample"] == 0
    assert metrics["val/power_w"] == pytest.approx(expected_ops * 0.38e-12 * 10, rel=1e-5)
    assert all(isinstance(block.lif, DecayInputLIF) for block in model.net.spiking_layers().values())


def _cnn_macs(c: int, size: int, in_channels: int = 20, joints: int = 13) -> int:
    """MACs of the UNet CNN for width c at size x size, layer by layer."""

    def conv(k, cin, cout, res):
        return k * k * cin * cout * res * res

    total = conv(7, in_channels, c, size) + conv(7, c, c, size)
    widths = [c, 2 * c, 4 * c, 8 * c, 16 * c, 16 * c]
    kernels = [5, 3, 3, 3, 3]
    for i in range(5):
        res = size >> (i + 1)
        total += conv(kernels[i], widths[i], widths[i + 1], res) + conv(kernels[i], widths[i + 1], widths[i + 1], res)
    ups = [(16 * c, 16 * c), (16 * c, 8 * c), (8 * c, 4 * c), (4 * c, 2 * c), (2 * c, c)]
    for i, (cin, cout) in enumerate(ups):
        res = size >> (4 - i)
        total += conv(3, cin, cout, res) + conv(3, 2 * cout, cout, res)
    return total + conv(3, c, joints, size)


def test_dense_macs_of_the_cnn_and_its_power_at_100_hz():
    assert _cnn_macs(32, 256) / 1e9 == pytest.approx(22.6, abs=0.05)
    model = PoseCNN(base_channels=4).eval()
    monitor = SpikeEnergyMonitor(pj_per_mac=1.645, samples_per_second=100.0)
    metrics = _validate(model, _samples(3, 2, 32, seed=2), monitor)
    expected = _cnn_macs(4, 32)
    assert metrics["val/dense_macs_per_sample"] == pytest.approx(expected)
    assert metrics["val/synops_per_sample"] == 0
    assert metrics["val/power_w"] == pytest.approx(expected * 1.645e-12 * 100)
    assert "val/firing_rate_mean" not in metrics
    assert monitor.last["val"]["energy_mj_per_sample"] == pytest.approx(expected * 1.645e-9)


def test_dense_macs_of_a_compiled_cnn_are_counted_outside_its_graph():
    """The compiled UNet's convolutions are not hooked (hooks would be traced into the graph, with
    guards on the monitor's state): its calls are counted, measured once on fake tensors."""
    torch._dynamo.reset()
    counters.clear()
    model = PoseCNN(base_channels=4).eval()
    model.net.compile(backend="eager")  # dynamo without inductor: what is traced, quickly
    model._compiled = True
    monitor = SpikeEnergyMonitor(pj_per_mac=1.645, samples_per_second=100.0)
    samples = _samples(5, 2, 32, seed=2)  # batches of 2, 2 and 1
    metrics = _validate(model, samples, monitor)
    assert metrics["val/dense_macs_per_sample"] == pytest.approx(_cnn_macs(4, 32))
    graphs = counters["stats"]["unique_graphs"]
    again = _validate(model, samples, SpikeEnergyMonitor(pj_per_mac=1.645, samples_per_second=100.0))
    assert again["val/dense_macs_per_sample"] == pytest.approx(_cnn_macs(4, 32))  # a new monitor counts too
    assert counters["stats"]["unique_graphs"] == graphs  # and compiles nothing new
    assert all(not conv._forward_hooks for conv in model.dense_layers())  # removed at teardown


def test_monitor_rejects_models_without_the_protocol():
    class Plain(pl.LightningModule):
        """A module without ``spiking_layers``."""

    with pytest.raises(TypeError, match="spiking_layers"):
        SpikeEnergyMonitor().setup(None, Plain(), "validate")


@pytest.mark.parametrize("model_class", [PoseCNN, PoseSNN])
def test_figure_passes_are_not_counted(model_class, tmp_path):
    """PoseOverlayLogger re-runs predict_step on the first validation batch at the end of the
    epoch; its spikes and MACs must not be charged to the epoch's samples."""
    samples = _samples(3, 4, 32, seed=3)
    if model_class is PoseCNN:  # CNN batches carry no event window
        samples = [{k: v for k, v in s.items() if k not in ("events", "landmarks")} for s in samples]

    def measure(with_figures: bool) -> dict:
        torch.manual_seed(0)
        model = model_class(base_channels=4).eval()
        monitor = SpikeEnergyMonitor()
        callbacks = [PoseOverlayLogger(n_samples=1), monitor] if with_figures else [monitor]
        trainer = pl.Trainer(
            logger=TensorBoardLogger(str(tmp_path), name="figures" if with_figures else "plain"),
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=callbacks,
            accelerator="cpu",
        )
        trainer.validate(model, dataloaders=DataLoader(samples, batch_size=2), verbose=False)
        return monitor.last["val"]

    plain, with_figures = measure(False), measure(True)
    assert plain["dense_macs_per_sample"] + plain["synops_per_sample"] > 0
    assert with_figures == pytest.approx(plain, rel=1e-9)
