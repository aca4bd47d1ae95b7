"""Firing rates, synaptic operations and an energy estimate for the pose models (spec §8).

The energy model of the hybrid ANN-SNN reference (results/iccv/core.py, acc_en_plot.py):

* an SNN layer's synaptic operations per step = its firing rate x the dense MACs of the conv
  that feeds it. As in the reference, a layer's OWN output rate multiplies its own MACs (the
  rate is not shifted to the next layer's input); the non-spiking tail is not counted;
* SNN energy = synaptic operations x ``pj_per_ac`` (0.38 pJ per accumulate);
* dense energy = every MAC of the dense convolutions that ran (CNN, state-initialiser heads,
  RNN) x ``pj_per_mac``; 1.645 pJ is what the reference's 3.718 W for the 22.6 GMAC CNN at
  100 Hz implies (the constant itself is not in the reference code);
* power = energy per sample x ``samples_per_second`` (a sample is one window for the sequence
  models -- 10 per second for 100 ms windows -- and one inference for the CNN: 100 per second
  for a CNN run at 100 Hz).

The monitored model exposes ``spiking_layers() -> {name: block with .conv and .lif}`` and
``dense_layers() -> [conv modules]`` (the pose LightningModules do). Hooks count during the
chosen stages only and everything is logged at the end of each such epoch:
``{stage}/firing_rate/{layer}``, ``{stage}/firing_rate_mean``, ``{stage}/synops_per_sample``,
``{stage}/dense_macs_per_sample``, ``{stage}/energy_mj_per_sample``, ``{stage}/power_w``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl
from torch import Tensor, nn

__all__ = ["EnergyModel", "SpikeEnergyMonitor", "conv_macs", "energy_report"]


def conv_macs(module: nn.Module, inputs: Tensor, output: Tensor) -> int:
    """Dense MACs of one call of a Conv2d / ConvTranspose2d over the whole batch."""
    kernel = module.kernel_size[0] * module.kernel_size[1]
    if isinstance(module, nn.ConvTranspose2d):
        return inputs.numel() * (module.out_channels // module.groups) * kernel
    return output.numel() * (module.in_channels // module.groups) * kernel


@dataclass(frozen=True)
class EnergyModel:
    """Energy per operation, in picojoules.

    Attributes:
        pj_per_ac: one accumulate of a spiking synapse (0.38 pJ in the reference).
        pj_per_mac: one dense multiply-accumulate (1.645 pJ reproduces the reference's 3.718 W).
    """

    pj_per_ac: float = 0.38
    pj_per_mac: float = 1.645


def energy_report(
    synops_per_sample: float, dense_macs_per_sample: float, samples_per_second: float, model: EnergyModel
) -> dict[str, float]:
    """Energy (mJ) per sample and power (W) at ``samples_per_second``."""
    energy_pj = synops_per_sample * model.pj_per_ac + dense_macs_per_sample * model.pj_per_mac
    return {"energy_mj_per_sample": energy_pj * 1e-9, "power_w": energy_pj * 1e-12 * samples_per_second}


@dataclass
class _Tally:
    spikes: dict[str, Tensor] = field(default_factory=dict)  # layer -> [T] spike sums
    neurons: dict[str, int] = field(default_factory=dict)  # layer -> neurons per sample
    macs: dict[str, int] = field(default_factory=dict)  # layer -> dense MACs per sample per step
    dense_macs: int = 0
    samples: int = 0


class SpikeEnergyMonitor(pl.Callback):
    """Record per-layer firing rates; log synaptic operations, energy and power per epoch.

    Args:
        pj_per_ac: energy of a spiking accumulate (pJ).
        pj_per_mac: energy of a dense MAC (pJ).
        samples_per_second: samples (windows or CNN inferences) per second for the power figure.
        stages: which stages to measure (``"train"``, ``"val"``, ``"test"``). In training the
            hybrid also runs its CNN on the next window's frame (membrane-potential loss), which
            the dense count then includes.
    """

    def __init__(
        self,
        pj_per_ac: float = 0.38,
        pj_per_mac: float = 1.645,
        samples_per_second: float = 10.0,
        stages: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.model = EnergyModel(pj_per_ac, pj_per_mac)
        self.samples_per_second = samples_per_second
        self.stages = list(stages) if stages is not None else ["val", "test"]
        self._handles: list[Any] = []
        self._tallies: dict[str, _Tally] = {}
        self._active: list[str] = []  # stage stack: validation runs inside a training epoch
        self.last: dict[str, dict[str, float]] = {}

    # ------------------------------------------------------------------ hooks

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not hasattr(pl_module, "spiking_layers") or not hasattr(pl_module, "dense_layers"):
            raise TypeError(
                f"SpikeEnergyMonitor needs spiking_layers() and dense_layers() on {type(pl_module).__name__}"
            )
        self._remove_hooks()
        for name, block in pl_module.spiking_layers().items():
            self._handles.append(block.lif.register_forward_hook(self._spike_hook(name)))
            self._handles.append(block.conv.register_forward_hook(self._conv_hook(name)))
        for conv in pl_module.dense_layers():
            self._handles.append(conv.register_forward_hook(self._dense_hook))

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._remove_hooks()

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _current(self) -> _Tally | None:
        return self._tallies.get(self._active[-1]) if self._active else None

    def _spike_hook(self, name: str):
        def hook(module: nn.Module, args: tuple, output: tuple[Tensor, Tensor]) -> None:
            tally = self._current()
            if tally is None:
                return
            spikes = output[0].detach()  # the LIF returns (spikes [T, B, C, H, W], v_last)
            per_step = spikes.flatten(1).sum(1).double().cpu()
            previous = tally.spikes.get(name)
            if previous is not None and previous.shape != per_step.shape:
                raise ValueError(f"SpikeEnergyMonitor: {name} ran {per_step.numel()} steps, earlier {previous.numel()}")
            tally.spikes[name] = per_step if previous is None else previous + per_step
            tally.neurons[name] = int(spikes[0, 0].numel())

        return hook

    def _conv_hook(self, name: str):
        def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
            tally = self._current()
            if tally is not None:
                # The spiking blocks run their conv on all T * B images at once: one image is one
                # sample-step.
                tally.macs[name] = conv_macs(module, args[0][:1], output[:1])

        return hook

    def _dense_hook(self, module: nn.Module, args: tuple, output: Tensor) -> None:
        tally = self._current()
        if tally is not None:
            tally.dense_macs += conv_macs(module, args[0], output)

    # ------------------------------------------------------------------ stages

    def _begin(self, stage: str) -> None:
        if stage in self.stages:
            self._tallies[stage] = _Tally()
            self._active.append(stage)

    def _count(self, batch: Any, stage: str) -> None:
        if stage not in self.stages or not isinstance(batch, dict):
            return
        key = "events" if "events" in batch else "cnn_input"
        if key not in batch:
            return
        projection = batch.get("projection")
        views = projection.shape[1] if projection is not None and projection.ndim == 4 else 1
        self._tallies[stage].samples += int(batch[key].shape[0]) * views

    def report(self, stage: str) -> dict[str, float]:
        """Rates, operations and energy of the samples ``stage`` has seen in its current epoch."""
        tally = self._tallies.get(stage)
        if tally is None or tally.samples == 0:
            return {}
        out: dict[str, float] = {}
        synops, rates = 0.0, []
        for name, spikes in tally.spikes.items():
            rate = spikes / (tally.samples * tally.neurons[name])  # [T] per-step rate
            out[f"firing_rate/{name}"] = float(rate.mean())
            rates.append(float(rate.mean()))
            synops += float(rate.sum()) * tally.macs.get(name, 0)
        if rates:
            out["firing_rate_mean"] = sum(rates) / len(rates)
        dense = tally.dense_macs / tally.samples
        out["synops_per_sample"] = synops
        out["dense_macs_per_sample"] = dense
        out.update(energy_report(synops, dense, self.samples_per_second, self.model))
        return out

    def _finish(self, pl_module: pl.LightningModule, stage: str) -> None:
        if stage not in self.stages:
            return
        if self._active and self._active[-1] == stage:
            self._active.pop()
        self.last[stage] = self.report(stage)
        for key, value in self.last[stage].items():
            pl_module.log(f"{stage}/{key}", value)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._begin("train")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._count(batch, "train")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish(pl_module, "train")

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._begin("val")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._count(batch, "val")

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish(pl_module, "val")

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._begin("test")

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._count(batch, "test")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish(pl_module, "test")
