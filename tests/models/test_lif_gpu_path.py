"""The LIF classifier on the GPU path, checked on the CPU: host-sync-free steps, float32 spiking
state under bf16 autocast over 500 steps, and the compiled step cells (equal to eager, compiled
once whatever the sequence length and batch size)."""

from __future__ import annotations

import logging

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from event_lightning.callbacks.guards import NonFiniteLossGuard
from event_lightning.callbacks.host_sync import HostSyncGuard
from event_lightning.callbacks.tensorboard_figures import InputFigureLogger, SpikeRasterLogger
from event_lightning.models.lif_classifier import LIFClassifier
from event_lightning.nn.cpu_only import cpu_only
from event_lightning.nn.lif import LIFClassifierNet, LIFParameters, LIParameters

SENSOR = [6, 5, 2]  # 60 input features


def _batches(shapes: list[tuple[int, int]], seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Padded uint8 count batches ``(frames [T, B, 2, 5, 6], lengths, labels)``, one per ``(T, B)``."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for steps, batch in shapes:
        frames = (torch.rand(steps, batch, 2, 5, 6, generator=generator) < 0.3).to(torch.uint8)
        lengths = torch.randint(steps // 2, steps + 1, (batch,), generator=generator)
        lengths[0] = steps
        out.append((frames, lengths, torch.randint(0, 3, (batch,), generator=generator)))
    return out


def _trainer(tmp_path, callbacks, precision="32-true", **limits) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        devices=1,
        precision=precision,
        num_sanity_val_steps=0,
        logger=pl.loggers.TensorBoardLogger(tmp_path, name="lif"),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        **limits,
    )


def _loader(batches):
    return DataLoader(batches, batch_size=None, collate_fn=lambda batch: batch)


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_training_and_validation_steps_do_not_sync_with_the_host(tmp_path, precision):
    """Two training and two validation steps, with the always-present guard and the figure
    callbacks, under the host-sync detector (the dense input path, the one a GPU runs)."""
    torch.manual_seed(0)
    model = LIFClassifier(SENSOR, 3, hidden_features=16, v_th=0.1)
    callbacks = [
        HostSyncGuard(check_steps=2),
        NonFiniteLossGuard(),
        InputFigureLogger(n_samples=1, max_panels=2),
        SpikeRasterLogger("net.lif", n_samples=1),
    ]
    trainer = _trainer(tmp_path, callbacks, precision, limit_train_batches=3, limit_val_batches=2)
    trainer.fit(model, _loader(_batches([(9, 4), (7, 4), (8, 3)])), _loader(_batches([(6, 5), (9, 2)], seed=1)))
    assert trainer.global_step == 3 and torch.isfinite(trainer.callback_metrics["val/loss"])


def test_a_host_read_in_the_step_is_still_caught(tmp_path, monkeypatch):
    """The check above can fail: a step that reads its loss on the host is stopped, by name."""
    from event_lightning.callbacks.host_sync import HostSyncError

    original = LIFClassifier.training_step
    monkeypatch.setattr(LIFClassifier, "training_step", lambda self, b, i: original(self, b, i) * bool(b[1].max()))
    trainer = _trainer(tmp_path, [HostSyncGuard()], limit_train_batches=1, limit_val_batches=0)
    with pytest.raises(HostSyncError, match=r"LIFClassifier.training_step: Tensor.__bool__"):
        trainer.fit(LIFClassifier(SENSOR, 3, hidden_features=8), _loader(_batches([(5, 2)])))


def test_cpu_only_paths_refuse_other_devices():
    @cpu_only
    def density(x: torch.Tensor) -> float:
        return float(x.mean())

    assert density(torch.ones(3)) == 1.0
    with pytest.raises(ValueError, match="CPU-only path; it was given a tensor on meta"):
        density(torch.ones(3, device="meta"))


def _tutorial_net(seed: int = 0, input_features: int = 2450) -> LIFClassifierNet:
    torch.manual_seed(seed)
    lif = LIFParameters(tau_syn_inv=100.0, tau_mem_inv=100.0, v_th=0.3)
    return LIFClassifierNet(input_features, 100, 4, lif, LIParameters(200.0, 100.0), 1e-3)


def _spikes_and_voltages(net: LIFClassifierNet, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        spikes, _ = net.lif(frames)
        return spikes, net.readout(net.fc_out(spikes))[0]


def test_bf16_autocast_keeps_spikes_and_readout_traces_of_float32_over_500_steps():
    """POKER-DVS shapes (2450 -> 100 -> 4), 500 steps of 1.5 %-dense counts: under bf16 autocast the
    spikes and readout voltages stay float32 and within the bounds (< 0.5 % spikes flipped, readout
    < 1 % of its range); rounding only the input weights to bf16 breaks the spike bound."""
    net = _tutorial_net()
    generator = torch.Generator().manual_seed(0)
    shape = (500, 8, 2450)
    frames = ((torch.rand(shape, generator=generator) < 0.015) * torch.randint(1, 3, shape, generator=generator)).to(
        torch.uint8
    )
    spikes, voltages = _spikes_and_voltages(net, frames)
    assert 0.05 < spikes.mean() < 0.6
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed_spikes, mixed_voltages = _spikes_and_voltages(net, frames)
        assert net(frames).dtype == torch.float32
    assert mixed_spikes.dtype == mixed_voltages.dtype == torch.float32
    flipped = (mixed_spikes != spikes).float().mean().item()
    drift = ((mixed_voltages - voltages).abs().max() / voltages.abs().max()).item()
    print(f"bf16 autocast, T=500: spikes flipped {flipped:.2%}, readout drift {drift:.2%} of its range")
    assert flipped < 0.005 and drift < 0.01
    with torch.no_grad():
        net.lif.input_weights.copy_(net.lif.input_weights.bfloat16().float())
    rounded_spikes, _ = _spikes_and_voltages(net, frames)
    assert (rounded_spikes != spikes).float().mean() > 0.005


class _RecompileCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "Recompiling" in record.getMessage():
            self.messages.append(record.getMessage())


class _CountAfterFirstSteps(pl.Callback):
    """Collects dynamo's recompile messages once the first training and validation steps are done."""

    def __init__(self, counter: _RecompileCounter) -> None:
        self.counter, self.train_steps, self.val_steps = counter, 0, 0
        self.after: list[str] = []

    def on_train_batch_end(self, *args) -> None:
        self._maybe_reset(train=1)

    def on_validation_batch_end(self, *args, **kwargs) -> None:
        self._maybe_reset(val=1)

    def _maybe_reset(self, train: int = 0, val: int = 0) -> None:
        before = self.train_steps >= 1 and self.val_steps >= 1
        self.train_steps += train
        self.val_steps += val
        if not before and self.train_steps >= 1 and self.val_steps >= 1:
            self.counter.messages.clear()  # the first train and val step may compile


@pytest.mark.slow
def test_compiled_cells_equal_eager_and_compile_once_for_every_length_and_batch(tmp_path):
    """``compile: true`` compiles the two step cells; training and validating on sequences of
    several lengths and batch sizes (the last batch of an epoch is smaller) compiles nothing after the
    first training and validation step, and the compiled model's numbers equal eager's."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    eager = LIFClassifier(SENSOR, 3, hidden_features=16, v_th=0.1)
    compiled = LIFClassifier(SENSOR, 3, hidden_features=16, v_th=0.1, compile=True)
    compiled.load_state_dict(eager.state_dict())
    compiled.configure_model()
    compiled.configure_model()  # idempotent, as Lightning calls it per stage
    assert list(compiled.state_dict()) == list(eager.state_dict())
    frames, lengths, labels = _batches([(30, 4)])[0]
    results = []
    for model in (eager, compiled):
        log_probs = model(frames, lengths)
        torch.nn.functional.nll_loss(log_probs, labels).backward()
        results.append([log_probs.detach(), *(p.grad for p in model.parameters())])
    for ours, reference in zip(results[1], results[0], strict=True):
        torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)

    counter = _RecompileCounter()
    dynamo_log = logging.getLogger("torch._dynamo")
    torch._logging.set_logs(recompiles=True)
    dynamo_log.addHandler(counter)
    try:
        watcher = _CountAfterFirstSteps(counter)
        trainer = _trainer(tmp_path, [watcher], limit_val_batches=3)
        train = _loader(_batches([(12, 4), (17, 4), (9, 4), (25, 3)]))
        val = _loader(_batches([(11, 5), (30, 5), (8, 2)], seed=1))
        trainer.fit(compiled, train, val)
    finally:
        dynamo_log.removeHandler(counter)
        torch._logging.set_logs()
    assert watcher.train_steps == 4 and watcher.val_steps == 3
    assert counter.messages == []
