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

Building from a config is :mod:`bench.configs`; the loader passes and the training measurement
are :mod:`bench.training`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.configs import _merge, build_datamodule, build_model, read_config
from bench.measure import BenchConfig
from bench.results import Results, Row, Skipped
from bench.table import format_bytes
from bench.training import loader_pass, measure_training

GROUP = "methods"


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


def _describe_overrides(case: MethodCase, quick: bool) -> str:
    overrides = _merge(case.data, case.quick_data) if quick else case.data
    shown = {k: v for k, v in overrides.items() if k not in ("root", case.cache_arg)}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "as in the config"


def run_method(case: MethodCase, cfg: BenchConfig, results: Results, workdir: Path, steps: int | None = None) -> None:
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
            note=f"{1 / cold_s:.0f} samples/s incl. setup {setup_s:.2f} s; {cache_note}; ratio = loader / training",
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
