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
Under DDP the counts of all ranks are summed first.

Counting never makes a step wait on the device: spike counts are summed on the device and read
back at the end of the epoch; MACs follow from shapes (host integers). Nothing runs inside a
compiled graph: the spike hooks sit on the LIF layers, whose time loop is eager around the
compiled step cell, and dense convolutions inside a module that ``compile: true`` compiled are
not hooked (a hook would be traced into its graph, with guards on this callback's state):
instead the module's compiled call is wrapped, and the MACs of one call are measured once per
input shape by running the module eagerly on fake tensors (shapes only, no arithmetic).

Passes that are not part of the measured stage -- a figure callback's extra ``predict_step`` on a
batch the stage already counted -- run under :func:`not_measured` and are left out (they used to
add their spikes and MACs without their samples: 3.206e7 MACs per sample in epoch 0, 2.881e7 later).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.func import functional_call
from torch.utils._pytree import tree_leaves, tree_map_only

__all__ = ["EnergyModel", "SpikeEnergyMonitor", "conv_macs", "energy_report", "fake_conv_macs", "not_measured"]

_NOT_MEASURED: ContextVar[bool] = ContextVar("energy_not_measured", default=False)


@contextmanager
def not_measured() -> Iterator[None]:
    """Model calls inside this block are not counted by any :class:`SpikeEnergyMonitor`.

    For passes outside the measured stage's own steps (figure callbacks re-running a batch), whose
    operations would otherwise be charged to the stage's samples.
    """
    token = _NOT_MEASURED.set(True)
    try:
        yield
    finally:
        _NOT_MEASURED.reset(token)


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
    spikes: dict[str, Tensor] = field(default_factory=dict)  # layer -> [T] spike sums, float64 on the device
    neurons: dict[str, int] = field(default_factory=dict)  # layer -> neurons per sample
    macs: dict[str, int] = field(default_factory=dict)  # layer -> dense MACs per sample per step
    dense_macs: int = 0
    samples: int = 0


def _shapes(tree: Any) -> tuple:
    """The shapes of the tensors in a call's arguments (what the MACs of the call depend on)."""
    return tuple(tuple(leaf.shape) for leaf in tree_leaves(tree) if isinstance(leaf, Tensor))


def fake_conv_macs(module: nn.Module, convs: list[nn.Module], args: tuple, kwargs: dict) -> int:
    """Dense MACs of the ``convs`` in one call ``module(*args, **kwargs)``, on fake tensors.

    The call runs eagerly with fake copies of the arguments, parameters and buffers, so only
    shapes are computed and nothing of the module is touched (BatchNorm statistics included).
    """
    total = 0

    def hook(conv: nn.Module, inputs: tuple, output: Tensor) -> None:
        nonlocal total
        total += conv_macs(conv, inputs[0], output)

    handles = [conv.register_forward_hook(hook) for conv in convs]
    try:
        with FakeTensorMode(allow_non_fake_inputs=True) as mode, torch.compiler.set_stance("force_eager"):
            state = {**dict(module.named_parameters()), **dict(module.named_buffers())}
            fake_state = {name: mode.from_tensor(tensor) for name, tensor in state.items()}
            fake_args, fake_kwargs = tree_map_only(Tensor, mode.from_tensor, (args, kwargs))
            functional_call(module, fake_state, fake_args, fake_kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return total


class _CompiledCallCounter:
    """Stands in for a compiled module's call: counts its dense MACs, then runs the compiled code.

    ``nn.Module.compile`` stores the compiled call in ``_compiled_call_impl``; this wraps it (and
    :meth:`remove` puts it back), measuring each new input shape with :func:`fake_conv_macs`
    while the module runs uncompiled.
    """

    def __init__(self, module: nn.Module, convs: list[nn.Module], count: Any) -> None:
        self.module, self.convs, self.count = module, convs, count
        self.compiled = module._compiled_call_impl
        self.macs: dict[tuple, int] = {}
        module._compiled_call_impl = self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        key = _shapes((args, kwargs))
        if key not in self.macs:
            self.module._compiled_call_impl = None
            try:
                self.macs[key] = fake_conv_macs(self.module, self.convs, args, kwargs)
            finally:
                self.module._compiled_call_impl = self
        self.count(self.macs[key])
        return self.compiled(*args, **kwargs)

    def remove(self) -> None:
        self.module._compiled_call_impl = self.compiled


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
        self._removers: list[Any] = []
        self._tallies: dict[str, _Tally] = {}
        self._active: list[str] = []  # stage stack: validation runs inside a training epoch
        self.last: dict[str, dict[str, float]] = {}

    # ------------------------------------------------------------------ hooks

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not hasattr(pl_module, "spiking_layers") or not hasattr(pl_module, "dense_layers"):
            raise TypeError(
                f"SpikeEnergyMonitor needs spiking_layers() and dense_layers() on {type(pl_module).__name__}"
            )

    def _install(self, pl_module: pl.LightningModule) -> None:
        """Hook the model once per run, after ``configure_model`` has compiled what it compiles."""
        if self._removers:
            return
        for name, block in pl_module.spiking_layers().items():
            self._removers.append(block.lif.register_forward_hook(self._spike_hook(name, block.conv)).remove)
        dense = pl_module.dense_layers()
        compile_targets = pl_module.compile_targets() if hasattr(pl_module, "compile_targets") else []
        for unit in compile_targets:
            inside = [m for m in unit.modules() if any(m is conv for conv in dense)]
            if inside and unit._compiled_call_impl is not None:
                self._removers.append(_CompiledCallCounter(unit, inside, self._add_dense).remove)
                dense = [conv for conv in dense if not any(conv is m for m in inside)]
        for conv in dense:
            self._removers.append(conv.register_forward_hook(self._dense_hook).remove)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for remove in self._removers:
            remove()
        self._removers = []

    def _current(self) -> _Tally | None:
        if not self._active or _NOT_MEASURED.get():
            return None
        return self._tallies.get(self._active[-1])

    def _spike_hook(self, name: str, conv: nn.Module):
        def hook(module: nn.Module, args: tuple, output: tuple[Tensor, Tensor]) -> None:
            tally = self._current()
            if tally is None:
                return
            spikes = output[0].detach()  # the LIF returns (spikes [T, B, C, H, W], v_last)
            per_step = spikes.flatten(1).sum(1, dtype=torch.float64)  # stays on the device
            previous = tally.spikes.get(name)
            if previous is not None and previous.shape != per_step.shape:
                raise ValueError(f"SpikeEnergyMonitor: {name} ran {per_step.numel()} steps, earlier {previous.numel()}")
            tally.spikes[name] = per_step if previous is None else previous + per_step
            neurons = spikes[0, 0].numel()
            tally.neurons[name] = neurons
            # the conv feeding this layer, per sample-step: its output is one sample's currents
            tally.macs[name] = neurons * conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]

        return hook

    def _dense_hook(self, module: nn.Module, args: tuple, output: Tensor) -> None:
        self._add_dense(conv_macs(module, args[0], output))

    def _add_dense(self, macs: int) -> None:
        tally = self._current()
        if tally is not None:
            tally.dense_macs += macs

    # ------------------------------------------------------------------ stages

    def _begin(self, pl_module: pl.LightningModule, stage: str) -> None:
        self._install(pl_module)
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
        """Rates, operations and energy of the samples ``stage`` has seen in its current epoch (this process)."""
        tally = self._tallies.get(stage)
        return {} if tally is None else self._report(tally)

    def _report(self, tally: _Tally) -> dict[str, float]:
        if tally.samples == 0:
            return {}
        out: dict[str, float] = {}
        synops, rates = 0.0, []
        for name, spikes in tally.spikes.items():
            rate = spikes.cpu() / (tally.samples * tally.neurons[name])  # [T] per-step rate
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

    @staticmethod
    def _all_ranks(trainer: pl.Trainer, tally: _Tally) -> _Tally:
        """The tally summed over DDP ranks (every rank runs the same layers in the same order)."""
        if trainer.world_size == 1:
            return tally
        counts = torch.tensor(
            [tally.dense_macs, tally.samples], dtype=torch.float64, device=trainer.strategy.root_device
        )
        dense_macs, samples = trainer.strategy.reduce(counts, reduce_op="sum").tolist()
        spikes = {name: trainer.strategy.reduce(s.clone(), reduce_op="sum") for name, s in tally.spikes.items()}
        return _Tally(spikes, dict(tally.neurons), dict(tally.macs), int(dense_macs), int(samples))

    def _finish(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage not in self.stages:
            return
        if self._active and self._active[-1] == stage:
            self._active.pop()
        self.last[stage] = self._report(self._all_ranks(trainer, self._tallies[stage]))
        for key, value in self.last[stage].items():
            pl_module.log(f"{stage}/{key}", value)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._begin(pl_module, "train")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._count(batch, "train")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish(trainer, pl_module, "train")

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._begin(pl_module, "val")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._count(batch, "val")

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish(trainer, pl_module, "val")

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._begin(pl_module, "test")

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._count(batch, "test")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish(trainer, pl_module, "test")
