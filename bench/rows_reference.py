"""Group ``reference``: every method's training step against its reference implementation.

One row per method (see :mod:`bench.reference`): the project's LightningModule trains in a
``pl.Trainer`` on held batches, and after each of its steps the reference, rebuilt in
``bench/reference/`` from the method's spec with the same initial weights, takes a step on the same
batch with the same random draws. The first step checks that both give the same losses (to 1e-5
relative) and is not timed; the ratio is the reference's median step time over ours.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.measure import BenchConfig
from bench.reference.event2vec import event2vec_case
from bench.reference.harness import ReferenceCase, run_case
from bench.reference.hgvae import hgvae_case
from bench.reference.pose import pose_hybrid_case, pose_snn_case
from bench.reference.tvae import tvae_case
from bench.results import Results, Skipped

GROUP = "reference"


@dataclass(frozen=True)
class ReferenceSizes:
    """Shapes of the comparisons: the references' own settings where a CPU step stays within
    seconds, smaller ones for ``--quick``."""

    hgvae_nmnist: tuple[int, int] = (100, 32)  # (T bins, batch): the reference's 100-ms N-MNIST window
    hgvae_gestures: tuple[int, int] | None = (60, 8)  # 60 of the reference's 200 bins; None: skip
    tvae_batch: int = 8  # sequences of 18 frames, the reference's batch
    pose: tuple[int, int, int, int] = (10, 2, 64, 16)  # (T, batch, side, base channels): pure SNN and hybrid
    event2vec_batch: int = 32
    steps: int = 3

    @classmethod
    def make(cls, quick: bool) -> ReferenceSizes:
        if quick:
            return cls((20, 8), None, 2, (10, 2, 32, 8), 4, 1)
        return cls()


def _batch_first(pose: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """``(T, batch, side, c)`` -> the cases' ``(batch, T, side, c)``."""
    steps, batch, side, channels = pose
    return batch, steps, side, channels


def reference_cases(sizes: ReferenceSizes) -> list[tuple[str, Callable[[], ReferenceCase]]]:
    """``(method, builder)`` per comparison; builders run one at a time, so a failing one is skipped alone."""
    cases: list[tuple[str, Callable[[], ReferenceCase]]] = [
        ("HG-VAE N-MNIST", lambda: hgvae_case("N-MNIST", *sizes.hgvae_nmnist)),
    ]
    if sizes.hgvae_gestures is not None:
        cases.append(("HG-VAE DVSGesture", lambda: hgvae_case("DVSGesture", *sizes.hgvae_gestures)))
    cases += [
        ("Event2Vec ASL-DVS", lambda: event2vec_case(sizes.event2vec_batch)),
        ("pose SNN (DHP19)", lambda: pose_snn_case(*_batch_first(sizes.pose))),
        ("pose hybrid CNN-SNN (DHP19)", lambda: pose_hybrid_case(*_batch_first(sizes.pose))),
        ("TVAE Lpartial MNIST", lambda: tvae_case(sizes.tvae_batch)),
    ]
    return cases


def run_reference_rows(cfg: BenchConfig, results: Results, sizes: ReferenceSizes | None = None) -> None:
    """One row per method: our training step vs its reference, with the first step's loss check."""
    sizes = sizes or ReferenceSizes.make(cfg.quick)
    for name, build in reference_cases(sizes):
        if not cfg.selects(name):
            continue
        try:
            results.rows.append(run_case(build(), GROUP, sizes.steps))
        except Exception as error:  # noqa: BLE001 - one broken comparison must not hide the others
            results.skipped.append(Skipped(GROUP, name, f"{type(error).__name__}: {error}"))
