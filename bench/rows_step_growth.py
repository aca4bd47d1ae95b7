"""Group ``step_growth``: one training step per method over batch size and over sequence length.

For each method the project's LightningModule trains on held synthetic batches (the shapes of
:mod:`bench.reference`) at three batch sizes with the length fixed, then three lengths with the
batch fixed (two of each in ``--quick``); each point is the median step time and the peak memory
of one more step (:func:`bench.training.measure_training`). The size column starts with the swept
number, so :class:`bench.goals.GrowthGoal` fits ``log(value)`` against it; the last row of each
series notes its fitted exponent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch

from bench.measure import BenchConfig
from bench.reference.event2vec import event2vec_batches
from bench.reference.hgvae import hgvae_batches, hgvae_model
from bench.reference.pose import pose_batches
from bench.reference.tvae import tvae_batches, tvae_model
from bench.results import Results, Row, Skipped
from bench.rows_represent import fitted_exponent
from bench.training import measure_training

GROUP = "step_growth"

PEAK_NOTE = (
    "peak of the step's own tensors, above the running sum's low-water mark, with the garbage collector "
    "paused in the step (bench.training): frees of an earlier fit's tensors recorded inside it made the LIF "
    "classifier read 1.99 MB, not 3.01 MB, at 50 bins (memory exponent over T 1.19-1.21 instead of 0.98)"
)
"""Why the peak-memory rows can be compared across a series (the note of each series' last one)."""

Factory = Callable[[int, int], tuple[pl.LightningModule, list[Any]]]
"""``(batch, length) -> (untrained model, held batches)``."""


def _hgvae(batch: int, steps: int) -> tuple[pl.LightningModule, list[Any]]:
    return hgvae_model("N-MNIST"), hgvae_batches(steps, batch)


def _tvae(batch: int, seq_len: int) -> tuple[pl.LightningModule, list[Any]]:
    return tvae_model(seq_len), tvae_batches(batch, seq_len)


def _pose_snn(batch: int, steps: int) -> tuple[pl.LightningModule, list[Any]]:
    from event_lightning.models.pose import PoseSNN

    torch.manual_seed(0)
    return PoseSNN(base_channels=8, tau=2.0), pose_batches(batch, steps, 32)


def _event2vec(batch: int, events: int) -> tuple[pl.LightningModule, list[Any]]:
    from event_lightning.models.event2vec import Event2VecClassifier

    torch.manual_seed(0)
    model = Event2VecClassifier(sensor_size=[240, 180, 2], offset_t=True, lr_schedule="none")
    return model, event2vec_batches(batch, events)


def _lif_classifier(batch: int, steps: int) -> tuple[pl.LightningModule, list[Any]]:
    from event_lightning.models.lif_classifier import LIFClassifier

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    batches = [
        (
            (torch.rand(steps, batch, 2, 35, 35, generator=generator) < 0.015).float(),
            torch.full((batch,), steps),
            torch.randint(0, 4, (batch,), generator=generator),
        )
        for _ in range(2)
    ]
    return LIFClassifier(sensor_size=[35, 35, 2], num_classes=4), batches


@dataclass(frozen=True)
class GrowthCase:
    """A method's sweep: ``batches`` at ``length``, then ``lengths`` at ``batch``; ``length_name``
    names the sequence axis (bins, frames or events)."""

    name: str
    factory: Factory
    count: Callable[[Any], int]
    length_name: str
    batches: tuple[int, ...]
    length: int
    lengths: tuple[int, ...]
    batch: int


def growth_cases(quick: bool) -> list[GrowthCase]:
    """The sweeps (full: x4 in each axis; quick: x2 at small sizes)."""

    def sweep(full: tuple[int, ...], short: tuple[int, ...]) -> tuple[int, ...]:
        return short if quick else full

    return [
        GrowthCase(
            "HG-VAE N-MNIST",
            _hgvae,
            lambda b: int(b["target"].shape[0]),
            "bins",
            sweep((8, 16, 32), (4, 8)),
            50 if not quick else 10,
            sweep((25, 50, 100), (10, 20)),
            8 if not quick else 4,
        ),
        GrowthCase(
            "TVAE Lpartial MNIST",
            _tvae,
            lambda b: int(b[0].shape[0]),
            "frames",
            sweep((2, 4, 8), (1, 2)),
            18,
            sweep((18, 36, 72), (18, 36)),
            2 if not quick else 1,
        ),
        GrowthCase(
            "pose SNN (DHP19)",
            _pose_snn,
            lambda b: int(b["events"].shape[0]),
            "bins",
            sweep((1, 2, 4), (1, 2)),
            10 if not quick else 4,
            sweep((5, 10, 20), (4, 8)),
            2 if not quick else 1,
        ),
        GrowthCase(
            "Event2Vec ASL-DVS",
            _event2vec,
            lambda b: int(b.label.shape[0]),
            "events",
            sweep((8, 16, 32), (2, 4)),
            128 if not quick else 32,
            sweep((64, 128, 256), (32, 64)),
            8 if not quick else 2,
        ),
        GrowthCase(
            "LIF classifier POKER-DVS",
            _lif_classifier,
            lambda b: int(b[2].shape[0]),
            "bins",
            sweep((8, 16, 32), (4, 8)),
            100 if not quick else 20,
            sweep((50, 100, 200), (20, 40)),
            16 if not quick else 4,
        ),
    ]


def _series(case: GrowthCase, axis: str, points: list[tuple[int, int]], steps: int, results: Results) -> None:
    """Time and peak memory of ``case`` at each ``(batch, length)``; ``axis`` is ``batch`` or the length."""
    times, peaks, swept, last = [], [], [], []
    for batch, length in points:
        model, held = case.factory(batch, length)
        measured = measure_training(model, held, case.count, warmup=1, steps=steps)
        swept.append(batch if axis == "batch" else length)
        size = (
            f"{batch} samples, {length} {case.length_name}"
            if axis == "batch"
            else f"{length} {case.length_name}, batch {batch}"
        )
        operation = f"train step over {axis}: {case.name}"
        last = [Row(GROUP, operation, size, measured.step_s, note=f"median of {steps} step(s)")]
        times.append(measured.step_s)
        if measured.peak_bytes is not None:
            peaks.append(measured.peak_bytes)
            last.append(Row(GROUP, f"{operation}: peak memory", size, float(measured.peak_bytes), unit="B"))
        results.rows.extend(last)
    note = f"fitted exponent: time {fitted_exponent(swept, times):.2f}"
    if len(peaks) == len(swept):
        note += f", peak memory {fitted_exponent(swept, peaks):.2f}"
    for row in last:
        row.note = f"{row.note}; {note}" if row.note else note
        if row.unit == "B":
            row.note += f"; {PEAK_NOTE}"


def run_step_growth_rows(cfg: BenchConfig, results: Results, cases: list[GrowthCase] | None = None) -> None:
    """Every method's step over batch size and over sequence length (see the module docstring)."""
    steps = 1 if cfg.quick else 2
    for case in cases or growth_cases(cfg.quick):
        try:
            _series(case, "batch", [(b, case.length) for b in case.batches], steps, results)
            _series(case, case.length_name, [(case.batch, n) for n in case.lengths], steps, results)
        except Exception as error:  # noqa: BLE001 - one broken method must not hide the others
            results.skipped.append(Skipped(GROUP, case.name, f"{type(error).__name__}: {error}"))
