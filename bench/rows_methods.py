"""Rows 4, 5 and the peak-memory half of row 6: every method's synthetic config, end to end.

For each method the model and DataModule are built from its synthetic config YAML in ``config/``
(the overrides below shrink the data for time; they are printed in the rows), then, in one process:

1. **cold epoch** -- the stand-in files already written, a fresh, empty cache folder: ``setup`` plus
   one full pass over the train loader (frame caches are filled, ASL-DVS packs its events);
2. **cached epochs** -- two more passes, one before and one after the training measurement, so that
   the loader and the training step it feeds are measured back to back;
3. **training step** -- ``warmup`` untimed steps, then ``steps`` timed steps of a ``pl.Trainer``
   (``limit_train_batches``, no logger, no checkpoints, no validation) on batches fetched in step 2
   and held in memory: the time of ``training_step`` + backward + optimiser step(s) with no data
   wait (a callback times ``on_train_batch_start`` -> ``on_train_batch_end``);
4. **peak memory** of one more training step: on CUDA ``torch.cuda.max_memory_allocated`` above the
   step's start; on the CPU the peak of the running sum of the tensor allocations and frees that
   ``torch.profiler`` (``profile_memory=True``) records during the step, i.e. the peak live bytes of
   the tensors the step allocates (activations, gradients, optimiser temporaries; the profiler does
   not see frees of blocks allocated before it started, so this is not reduced by the previous
   step's gradients being released). Parameters and optimiser state, alive before the step, are
   listed apart.

Loaders run with ``num_workers=0`` (the DataModule's per-sample cost on one core, a lower bound of
what workers deliver). Each batch passes through the DataModule's ``on_before_batch_transfer`` /
``on_after_batch_transfer`` hooks as in a Trainer (the TVAE renders its frames there).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import logging
import tempfile
import time
import typing
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import yaml

from bench.run import BenchConfig, Results, Row, Skipped, format_bytes, paired_times
from event_lightning.cli import LINKED_MODEL_ARGS
from event_lightning.events.core import SensorSize

REPO_ROOT = Path(__file__).resolve().parent.parent
GROUP = "methods"


# ---------------------------------------------------------------- building from a config


def load_class(class_path: str) -> type:
    """The class named ``package.module.Class``."""
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _dataclass_of(annotation: Any) -> type | None:
    """The dataclass in ``annotation`` (``X`` or ``X | None``), else None."""
    candidates = typing.get_args(annotation) or (annotation,)
    return next((c for c in candidates if dataclasses.is_dataclass(c) and isinstance(c, type)), None)


def instantiate(class_path: str, init_args: dict[str, Any]) -> Any:
    """``Class(**init_args)``, turning dict values into the dataclass the signature asks for (what
    jsonargparse does for the CLI, e.g. ``synthetic: {num_classes: 6}`` -> ``SyntheticASLConfig``)."""
    cls = load_class(class_path)
    hints = typing.get_type_hints(cls.__init__)
    args = dict(init_args)
    for name, value in args.items():
        target = _dataclass_of(hints.get(name))
        if isinstance(value, dict) and target is not None:
            args[name] = target(**value)
    return cls(**args)


def read_config(path: str | Path) -> dict[str, Any]:
    """A config YAML of ``config/`` (``model`` and ``data`` with ``class_path`` / ``init_args``)."""
    path = REPO_ROOT / path
    config = yaml.safe_load(path.read_text())
    for key in ("model", "data"):
        if not isinstance(config.get(key), dict) or "class_path" not in config[key]:
            raise ValueError(
                f"{path}: expected a '{key}:' section with class_path; found {config.get(key)!r}"
            )
    return config


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied; nested dicts are merged key by key."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def build_datamodule(config: dict[str, Any], overrides: dict[str, Any]) -> pl.LightningDataModule:
    """The config's DataModule with ``overrides`` on its ``init_args``."""
    return instantiate(config["data"]["class_path"], _merge(config["data"].get("init_args", {}), overrides))


def build_model(
    config: dict[str, Any], datamodule: pl.LightningDataModule, overrides: dict[str, Any]
) -> pl.LightningModule:
    """The config's model with the CLI's links from the DataModule (``sensor_size`` as ``[W, H, P]``,
    ``num_classes``, ``n_time_steps``; only those the model's ``__init__`` accepts)."""
    class_path = config["model"]["class_path"]
    args = _merge(config["model"].get("init_args", {}), overrides)
    accepted = inspect.signature(load_class(class_path).__init__).parameters
    for name in LINKED_MODEL_ARGS:
        value = getattr(datamodule, name, None)
        if name in accepted and value is not None:
            args[name] = SensorSize.coerce(value).as_list() if name == "sensor_size" else value
    return instantiate(class_path, args)


# ---------------------------------------------------------------- the methods


def _time_first_frames(batch: Any) -> int:
    return int(batch[0].shape[1])  # (frames [T, B, ...], lengths, labels)


def _dict_target(batch: Any) -> int:
    return int(batch["target"].shape[0])


def _event_batch(batch: Any) -> int:
    return int(batch.label.shape[0])


def _pose(batch: Any) -> int:
    return int(batch["ms_start"].shape[0])


def _sequences(batch: Any) -> int:
    return int(batch[1].shape[0])  # (x [B, S, C, H, W], labels) after the DataModule's render hook


_POSE_QUICK = {"subjects": [1, 13], "movements_per_subject": 1, "duration_ms": 600}


@dataclass(frozen=True)
class MethodCase:
    """One method's synthetic config and how the bench shrinks it.

    Attributes:
        name: the method in the table.
        config: YAML under ``config/``.
        count: samples in one batch (after the DataModule's transfer hooks).
        data: ``data.init_args`` overrides for every run (workers, cache folder placement is added).
        quick_data: further overrides for ``--quick``.
        model: ``model.init_args`` overrides.
        cache_arg: the DataModule argument that names its cache folder (None: it has no cache).
        quick_epoch_batches: in ``--quick``, time only this many batches per pass (loaders without
            a cache only; a cached loader needs full passes to fill its cache).
        steps, quick_steps: timed training steps.
    """

    name: str
    config: str
    count: Callable[[Any], int]
    data: dict[str, Any] = field(default_factory=dict)
    quick_data: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    cache_arg: str | None = "cache_dir"
    quick_epoch_batches: int | None = None
    steps: int = 8
    quick_steps: int = 2


METHOD_CASES: tuple[MethodCase, ...] = (
    MethodCase(
        "LIF classifier (quickstart N-MNIST)",
        "config/quickstart.yaml",
        _time_first_frames,
        data={"n_test": 10},
        quick_data={"n_train": 96},
        cache_arg=None,
    ),
    MethodCase(
        "HG-VAE N-MNIST",
        "config/hgvae_nmnist_synthetic.yaml",
        _dict_target,
        data={"synthetic_config": {"n_test": 16}},
        quick_data={"synthetic_config": {"n_train": 96}},
        quick_steps=1,  # ~1.5 s per step on one core
    ),
    MethodCase(
        "HG-VAE DVSGesture",
        "config/hgvae_dvsgesture_synthetic.yaml",
        _dict_target,
        quick_data={
            "synthetic_config": {
                "train_users": [1],
                "lightings": ["led", "natural"],
                "include_other": False,
                "duration_us": 400_000,
            }
        },
        quick_steps=1,
    ),
    MethodCase(
        "Event2Vec ASL-DVS",
        "config/event2vec_synthetic.yaml",
        _event_batch,
        data={"num_workers": 0, "persistent_workers": False, "pin_memory": False},
        quick_data={"synthetic": {"samples_per_class": 12}},
    ),
    MethodCase(
        "pose CNN (DHP19)",
        "config/pose_cnn_synthetic.yaml",
        _pose,
        quick_data=_POSE_QUICK,
    ),
    MethodCase(
        "pose SNN (DHP19)",
        "config/pose_snn_synthetic.yaml",
        _pose,
        quick_data=_POSE_QUICK,
    ),
    MethodCase(
        "pose hybrid CNN-SNN (DHP19)",
        "config/pose_hybrid_cnn_snn_synthetic.yaml",
        _pose,
        quick_data=_POSE_QUICK,
        model={"cnn_checkpoint": None},  # random frozen CNN: same cost as a trained one
    ),
    MethodCase(
        "TVAE (MNIST sequences)",
        "config/tvae_Lpartial_mnist_synthetic.yaml",
        _sequences,
        data={"num_workers": 0},
        cache_arg=None,
        quick_epoch_batches=12,
    ),
)


# ---------------------------------------------------------------- measuring


@dataclass
class EpochPass:
    """One pass over a train loader: wall time (s), samples, and the batches (when kept)."""

    seconds: float
    samples: int
    batches: list[Any]

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds


def loader_pass(
    datamodule: pl.LightningDataModule,
    count: Callable[[Any], int],
    max_batches: int | None = None,
    keep: int = 0,
) -> EpochPass:
    """Iterate the train loader as a Trainer would (through the DataModule's transfer hooks), up to
    ``max_batches``; keep the first ``keep`` batches."""
    kept: list[Any] = []
    samples = 0
    start = time.perf_counter()
    for k, batch in enumerate(datamodule.train_dataloader()):
        if max_batches is not None and k >= max_batches:
            break
        batch = datamodule.on_after_batch_transfer(datamodule.on_before_batch_transfer(batch, 0), 0)
        samples += count(batch)
        if len(kept) < keep:
            kept.append(batch)
    seconds = time.perf_counter() - start
    if samples == 0:
        raise ValueError(
            "bench: the train loader yielded no samples; enlarge the stand-in or lower batch_size"
        )
    return EpochPass(seconds, samples, kept)


def tensor_bytes(obj: Any) -> int:
    """Bytes of every tensor / array in a (nested) batch, parameters or optimiser state."""
    if isinstance(obj, torch.Tensor):
        return obj.element_size() * obj.numel()
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):  # NamedTuples included
        return sum(tensor_bytes(v) for v in obj)
    return 0


def peak_from_memory_records(records: list[tuple[int, int]]) -> int:
    """Peak of the running sum of ``(time, bytes)`` allocation (+) / free (-) records, in time order
    (0 when nothing outlives its allocation above the start)."""
    running = np.cumsum([nbytes for _, nbytes in sorted(records)], dtype=np.int64)
    return int(max(running.max(initial=0), 0))


class StepTimer(pl.Callback):
    """Times training steps ``warmup .. warmup + steps - 1`` and measures the peak memory of step
    ``warmup + steps`` (see the module docstring)."""

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup, self.steps = warmup, steps
        self.times: list[float] = []
        self.peak_bytes: int | None = None
        self.memory_method = ""
        self._start = 0.0
        self._profiler: torch.profiler.profile | None = None
        self._cuda_base = 0

    def _sync(self, pl_module: pl.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._sync(pl_module)
        if batch_idx == self.warmup + self.steps:
            if pl_module.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(pl_module.device)
                self._cuda_base = torch.cuda.memory_allocated(pl_module.device)
            else:
                activities = [torch.profiler.ProfilerActivity.CPU]
                self._profiler = torch.profiler.profile(activities=activities, profile_memory=True)
                self._profiler.start()
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._sync(pl_module)
        elapsed = time.perf_counter() - self._start
        if self.warmup <= batch_idx < self.warmup + self.steps:
            self.times.append(elapsed)
        elif batch_idx == self.warmup + self.steps:
            if pl_module.device.type == "cuda":
                self.peak_bytes = torch.cuda.max_memory_allocated(pl_module.device) - self._cuda_base
                self.memory_method = "torch.cuda.max_memory_allocated above the step's start"
            elif self._profiler is not None:
                self._profiler.stop()
                records = [
                    (event.start_ns(), event.nbytes())
                    for event in self._profiler.profiler.kineto_results.events()
                    if event.name() == "[memory]" and str(event.device_type()).endswith("CPU")
                ]
                self.peak_bytes = peak_from_memory_records(records)
                self.memory_method = "torch.profiler: peak live bytes of the tensors allocated in the step"
                self._profiler = None


@dataclass
class TrainMeasurement:
    """Median time (s) of one training step, its batch size, peak memory (bytes) and how."""

    step_s: float
    batch_size: int
    peak_bytes: int | None
    memory_method: str
    state_bytes: int

    @property
    def samples_per_s(self) -> float:
        return self.batch_size / self.step_s


_LIGHTNING_LOGGERS = ("pytorch_lightning", "pytorch_lightning.utilities.rank_zero", "lightning_fabric")


def _as_is(batch: Any) -> Any:
    return batch


def measure_training(
    model: pl.LightningModule, batches: list[Any], count: Callable[[Any], int], warmup: int, steps: int
) -> TrainMeasurement:
    """Train ``model`` for ``warmup + steps + 1`` steps on ``batches`` (cycled, held in memory)."""
    total = warmup + steps + 1
    feed = [batches[k % len(batches)] for k in range(total)]
    timer = StepTimer(warmup, steps)
    trainer = pl.Trainer(
        accelerator="auto",
        devices=1,
        max_epochs=1,
        limit_train_batches=total,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    # A DataLoader over the held batches (a plain list would read as a list of loaders).
    loader = torch.utils.data.DataLoader(feed, batch_size=None, shuffle=False, collate_fn=_as_is)
    loggers = [logging.getLogger(name) for name in _LIGHTNING_LOGGERS]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.WARNING)  # no "GPU available" chatter per method
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=".*(val_dataloader|num_workers|LeafSpec|Memory block).*"
            )
            trainer.fit(model, train_dataloaders=loader)
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.setLevel(level)
    if len(timer.times) != steps:
        raise RuntimeError(f"bench: timed {len(timer.times)} training steps, expected {steps}")
    optim_state = [opt.state_dict()["state"] for opt in trainer.optimizers]
    state_bytes = tensor_bytes(list(model.parameters())) + tensor_bytes(optim_state)
    return TrainMeasurement(
        float(np.median(timer.times)), count(feed[0]), timer.peak_bytes, timer.memory_method, state_bytes
    )


def _describe_overrides(case: MethodCase, quick: bool) -> str:
    overrides = _merge(case.data, case.quick_data) if quick else case.data
    shown = {k: v for k, v in overrides.items() if k not in ("root", case.cache_arg)}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "as in the config"


def run_method(
    case: MethodCase, cfg: BenchConfig, results: Results, workdir: Path, steps: int | None = None
) -> None:
    """Rows 4 and 5 and the peak step memory of one method (``steps``: timed steps instead of the
    case's own)."""
    config = read_config(case.config)
    overrides = _merge(case.data, case.quick_data) if cfg.quick else dict(case.data)
    stem = Path(case.config).stem
    overrides["root"] = str(workdir / "data" / stem.split("_")[0])  # pose configs share one stand-in
    if case.cache_arg:
        overrides[case.cache_arg] = str(workdir / "stand-in-cache" / stem)
    steps = steps or (case.quick_steps if cfg.quick else case.steps)
    warmup = 1

    # Write the stand-in files (not timed): a first DataModule on its own cache folder.
    torch.manual_seed(0)
    writer = build_datamodule(config, overrides)
    writer.prepare_data()
    writer.setup("fit")
    del writer

    if case.cache_arg:
        overrides[case.cache_arg] = str(workdir / "cache" / stem)  # empty: the cold epoch fills it
    max_batches = case.quick_epoch_batches if cfg.quick and case.cache_arg is None else None
    datamodule = build_datamodule(config, overrides)
    start = time.perf_counter()
    datamodule.prepare_data()
    datamodule.setup("fit")
    setup_s = time.perf_counter() - start
    cold = loader_pass(datamodule, case.count, max_batches)
    cached_a = loader_pass(datamodule, case.count, max_batches, keep=warmup + steps + 1)

    torch.manual_seed(0)
    model = build_model(config, datamodule, case.model)
    train = measure_training(model, cached_a.batches, case.count, warmup, steps)
    cached_b = loader_pass(datamodule, case.count, max_batches)

    consumption_s = train.step_s / train.batch_size  # seconds per sample the step consumes
    cold_s = (setup_s + cold.seconds) / cold.samples
    cached_s = (cached_a.seconds + cached_b.seconds) / (cached_a.samples + cached_b.samples)
    size = f"{cold.samples} samples/pass, batch {train.batch_size}"
    if max_batches is not None:
        size += f" (first {max_batches} batches)"
    shrink = _describe_overrides(case, cfg.quick)
    cache_note = "cache folder empty at start" if case.cache_arg else "this DataModule has no cache"
    peer = "train step consumption"
    results.rows.append(
        Row(
            GROUP,
            f"cold epoch: {case.name}",
            size,
            cold_s,
            peer,
            consumption_s,
            note=f"{1 / cold_s:.0f} samples/s incl. setup {setup_s:.2f} s; {cache_note}; "
            "ratio = loader / training",
        )
    )
    results.rows.append(
        Row(
            GROUP,
            f"cached epoch: {case.name}",
            size,
            cached_s,
            peer,
            consumption_s,
            note=f"{1 / cached_s:.0f} samples/s (2 passes around the training measurement); goal >= 5x",
        )
    )
    results.rows.append(
        Row(
            GROUP,
            f"train step: {case.name}",
            f"batch {train.batch_size}",
            train.step_s,
            note=f"{train.samples_per_s:.1f} samples/s, median of {steps} step(s) after {warmup} warm-up; "
            f"pre-fetched batches; data: {shrink}",
        )
    )
    if train.peak_bytes is None:
        results.skipped.append(Skipped(GROUP, f"peak train-step memory: {case.name}", "no memory record"))
        return
    results.rows.append(
        Row(
            GROUP,
            f"peak train-step memory: {case.name}",
            f"batch {train.batch_size}",
            float(train.peak_bytes),
            unit="B",
            note=f"{format_bytes(train.peak_bytes / train.batch_size)} per sample; parameters + optimiser "
            f"state {format_bytes(train.state_bytes)} on top; {train.memory_method}",
        )
    )


def selected_cases(names: list[str] | None = None) -> list[MethodCase]:
    """``METHOD_CASES``, or those whose name contains one of ``names``."""
    if not names:
        return list(METHOD_CASES)
    chosen = [c for c in METHOD_CASES if any(n in c.name for n in names)]
    if not chosen:
        raise ValueError(f"bench: no method matches {names}; choose from {[c.name for c in METHOD_CASES]}")
    return chosen


def run_method_rows(
    cfg: BenchConfig, results: Results, names: list[str] | None = None, steps: int | None = None
) -> None:
    """Rows 4, 5 and 6 (peak step memory) for every method (or those matching ``names``);
    ``steps`` timed training steps per method instead of each case's own (smoke tests)."""
    with tempfile.TemporaryDirectory(prefix="el_bench_methods_") as tmp:
        for case in selected_cases(names):
            try:
                run_method(case, cfg, results, Path(tmp), steps)
            except Exception as error:  # noqa: BLE001 - one broken method must not hide the others' rows
                results.skipped.append(Skipped(GROUP, case.name, f"{type(error).__name__}: {error}"))


# ---------------------------------------------------------------- Event2Vec data path vs the reference's


@dataclass(frozen=True)
class DatapathShape:
    """The Event2Vec data-path comparison: stand-in size, batch, network width, batches per call."""

    classes: int
    per_class: int
    events: int = 28_000  # mean events per ASL-DVS recording
    batch: int = 32
    d_model: int = 64
    batches_per_call: int = 1

    @classmethod
    def make(cls, quick: bool) -> DatapathShape:
        if quick:
            return cls(classes=4, per_class=12)
        return cls(classes=6, per_class=40, d_model=256, batches_per_call=2)


def _cycle(loader: Any) -> Any:
    while True:
        yield from loader


def run_event2vec_datapath_rows(
    cfg: BenchConfig, results: Results, shape: DatapathShape | None = None
) -> None:
    """Event2Vec: our packed loader vs a re-creation of the reference's per-file loader, alone and
    feeding the same network's training step (see bench/event2vec_datapath.py)."""
    from bench.event2vec_datapath import ReferenceEventDataset, _unpack, reference_collate
    from event_lightning.data.datasets.asl_dvs import ASLDVSDataModule, find_asl_dvs_files, split_per_class
    from event_lightning.data.standins.asl_dvs import SyntheticASLConfig
    from event_lightning.nn.event2vec import Event2VecConfig, Event2VecNet

    shape = shape or DatapathShape.make(cfg.quick)
    group = "e2v_data"
    with tempfile.TemporaryDirectory(prefix="el_bench_e2v_") as tmp:
        synthetic = SyntheticASLConfig(
            num_classes=shape.classes, samples_per_class=shape.per_class, events_per_sample=shape.events
        )
        common = {"batch_size": shape.batch, "num_workers": 0, "sample_number": 255}
        ours = ASLDVSDataModule(root=tmp, synthetic=synthetic, seed=0, pin_memory=False, **common)
        ours.prepare_data()  # writes the compressed npz stand-in and packs it
        ours.setup("fit")
        # packing alone (the stand-in files are written): a second DataModule on a fresh cache folder
        start = time.perf_counter()
        packer = ASLDVSDataModule(
            root=tmp,
            synthetic=synthetic,
            seed=0,
            pin_memory=False,
            cache_dir=str(Path(tmp) / "pack-timed"),
            **common,
        )
        packer.prepare_data()
        pack_s = time.perf_counter() - start
        del packer
        paths, labels = find_asl_dvs_files(tmp, "npz", ours.classes)
        train_ids, _ = split_per_class(labels)
        if len(train_ids) < shape.batch:
            raise ValueError(f"bench: {len(train_ids)} training recordings for batches of {shape.batch}")
        reference = ReferenceEventDataset(
            [paths[i] for i in train_ids], labels[train_ids], 255, ours.t_max_used
        )
        ref_loader = torch.utils.data.DataLoader(
            reference, batch_size=shape.batch, shuffle=True, drop_last=True, collate_fn=reference_collate
        )
        iterators = {"ours": _cycle(ours.train_dataloader()), "reference": _cycle(ref_loader)}
        first = {name: _unpack(next(it)) for name, it in iterators.items()}
        sizes = {name: len(batch[-1]) for name, batch in first.items()}
        if set(sizes.values()) != {shape.batch}:
            raise RuntimeError(f"bench: batch sizes {sizes}, expected {shape.batch} on both sides")
        samples = shape.batch * shape.batches_per_call

        def fetch(name: str) -> Callable[[], None]:
            def call() -> None:
                for _ in range(shape.batches_per_call):
                    next(iterators[name])

            return call

        ours_t, ref_t = paired_times(fetch("ours"), fetch("reference"), cfg)
        mean_events = float(np.diff(ours.train_set.packed.offsets).mean())
        size = f"{len(train_ids)} recordings of ~{mean_events / 1000:.0f}k events, batch {shape.batch}"
        peer = "reference per-file npz loader (re-created)"
        results.rows.append(
            Row(
                group,
                "Event2Vec loader, per sample",
                size,
                ours_t / samples,
                peer,
                ref_t / samples,
                note=f"ours {samples / ours_t:.0f} vs reference {samples / ref_t:.0f} samples/s; "
                f"num_workers=0; ours packs the recordings once first ({pack_s:.2f} s)",
            )
        )

        net_config = Event2VecConfig(
            d_model=shape.d_model,
            n_head=max(1, shape.d_model // 16),
            d_feedforward=2 * shape.d_model,
            num_classes=shape.classes,
        )
        steps = {}
        for name in iterators:
            torch.manual_seed(0)  # the same initial network on both sides
            net = Event2VecNet(net_config)
            optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)

            def step(
                net: torch.nn.Module = net, optimizer: torch.optim.Optimizer = optimizer, name: str = name
            ) -> None:
                for _ in range(shape.batches_per_call):
                    x, y, t, p, valid, label = _unpack(next(iterators[name]))
                    loss = torch.nn.functional.cross_entropy(net(x, y, t, p, valid), label)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()

            steps[name] = step
        ours_t, ref_t = paired_times(steps["ours"], steps["reference"], cfg)
        results.rows.append(
            Row(
                group,
                "Event2Vec loader + train step, per sample",
                f"{size}, d_model {shape.d_model}",
                ours_t / samples,
                peer,
                ref_t / samples,
                note=f"ours {samples / ours_t:.1f} vs reference {samples / ref_t:.1f} samples/s; "
                "same network, AdamW",
            )
        )
