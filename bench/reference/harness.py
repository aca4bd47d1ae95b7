"""Runs a LightningModule's training step and a reference step side by side (same process, same
weights, same batches, same random draws) and turns the result into a bench row.

The project's step runs inside a real ``pl.Trainer`` (manual or automatic optimisation, hooks and
logging included); :class:`PairedReferenceClock` times it and, right after it, runs the reference
step on the same batch, with the random-number state the project's step started from, and times
that. The reference is built at ``on_train_start`` from the model's weights at that moment, so on
the first batch both sides hold the same weights and draw the same noise: their losses must agree
(:func:`loss_agreement`). That first step is a warm-up step and is not timed.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from bench.results import Row
from bench.training import fit_on_batches

ReferenceStep = Callable[[Any], Mapping[str, torch.Tensor]]
"""One reference training step on a batch -> its named losses (detached)."""

LOSS_TOLERANCE = 1e-5
"""Largest relative loss difference (``|a - b| / max(1, |b|)``) that counts as the same loss."""


def copy_weights(source: Iterable[nn.Module], target: Iterable[nn.Module]) -> None:
    """Copy every parameter, then every buffer, of ``source`` into ``target``, matched by position.

    The reference modules are built with their parameters in the project's order; a shape mismatch
    means the two networks differ and raises.
    """
    source, target = list(source), list(target)
    src = [t for m in source for t in m.parameters()] + [t for m in source for t in m.buffers()]
    dst = [t for m in target for t in m.parameters()] + [t for m in target for t in m.buffers()]
    if len(src) != len(dst):
        raise ValueError(f"copy_weights: {len(src)} source tensors for {len(dst)} reference tensors")
    with torch.no_grad():
        for k, (a, b) in enumerate(zip(src, dst, strict=True)):
            if a.shape != b.shape:
                raise ValueError(f"copy_weights: tensor {k} has shape {tuple(a.shape)} here, {tuple(b.shape)} there")
            b.copy_(a)


def loss_agreement(ours: Mapping[str, float], reference: Mapping[str, float]) -> str:
    """``"losses equal to 1e-5 (...)"``, or text starting with ``NO:`` naming the worst loss."""
    missing = sorted(set(reference) - set(ours))
    if missing:
        return f"NO: the project's step did not report {missing}"
    errors = {name: abs(ours[name] - value) / max(1.0, abs(value)) for name, value in reference.items()}
    worst = max(errors, key=errors.get)
    text = f"{len(errors)} loss(es) equal to {LOSS_TOLERANCE:.0e}, worst rel. diff {errors[worst]:.1e} ({worst})"
    if errors[worst] > LOSS_TOLERANCE:
        return f"NO: {worst} {ours[worst]:.6g} vs reference {reference[worst]:.6g} (rel. diff {errors[worst]:.1e})"
    return text


def logged_step_losses(names: Mapping[str, str]) -> Callable[[pl.Trainer, Any], dict[str, float]]:
    """Read the project's losses of the step just run from what it logged with ``on_step=True``:
    ``names`` maps a loss name to the logged key (``"train/loss"`` reads ``train/loss_step`` when the
    value is also logged per epoch)."""

    def read(trainer: pl.Trainer, outputs: Any) -> dict[str, float]:
        metrics = trainer.callback_metrics
        found = {}
        for name, key in names.items():
            value = metrics.get(f"{key}_step", metrics.get(key))
            if value is not None:
                found[name] = float(value)
        return found

    return read


class PairedReferenceClock(pl.Callback):
    """Times every training step of the project and of the reference, alternately (see the module
    docstring); keeps both sides' losses of the first step."""

    def __init__(
        self,
        build_reference: Callable[[pl.LightningModule], ReferenceStep],
        ours_losses: Callable[[pl.Trainer, Any], dict[str, float]],
        warmup: int,
    ) -> None:
        self.build_reference, self.ours_losses, self.warmup = build_reference, ours_losses, warmup
        self.ours_s: list[float] = []
        self.reference_s: list[float] = []
        self.ours_first: dict[str, float] = {}
        self.reference_first: dict[str, float] = {}
        self._reference: ReferenceStep | None = None
        self._rng: torch.Tensor | None = None
        self._start = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._reference = self.build_reference(pl_module)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int):
        self._rng = torch.get_rng_state()
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        ours_s = time.perf_counter() - self._start
        if batch_idx == 0:
            self.ours_first = self.ours_losses(trainer, outputs)
        torch.set_rng_state(self._rng)  # the reference draws the same noise
        start = time.perf_counter()
        losses = self._reference(batch)
        reference_s = time.perf_counter() - start
        if batch_idx == 0:
            self.reference_first = {name: float(value) for name, value in losses.items()}
        if batch_idx >= self.warmup:
            self.ours_s.append(ours_s)
            self.reference_s.append(reference_s)


@dataclass
class ReferenceCase:
    """One method's comparison.

    Attributes:
        name: the method in the table. size: the shapes, for the size column. peer: the reference.
        model: the project's LightningModule, untrained. batches: what the DataModule would hand it.
        build_reference: the model -> the reference step on a copy of its current weights.
        ours_losses: the project's losses of the step just run (trainer, step outputs) -> by name.
        note: extra text for the row.
        warmup: untimed steps of both sides before the timed ones (the first checks the losses).
        check_in_float64: judge the agreement on a first step of both sides in float64 instead of
            the timed float32 one. For steps that take several optimiser steps in a row (HG-VAE's
            three phases), float32 rounding differences of 1e-7 in the first phase reach the
            later phases' losses amplified (Adam normalises tiny gradients); in float64 the same
            sums agree to 1e-12, so a real difference between the two implementations still shows.
    """

    name: str
    size: str
    peer: str
    model: pl.LightningModule
    batches: list[Any]
    build_reference: Callable[[pl.LightningModule], ReferenceStep]
    ours_losses: Callable[[pl.Trainer, Any], dict[str, float]]
    note: str = ""
    warmup: int = 1
    check_in_float64: bool = False


@contextmanager
def _default_float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _reference_in_float64(build: Callable[[pl.LightningModule], ReferenceStep]):
    """``build`` with the reference's modules created, and its step run, in float64."""

    def build_float64(model: pl.LightningModule) -> ReferenceStep:
        with _default_float64():
            step = build(model)

        def step_float64(batch: Any) -> Mapping[str, torch.Tensor]:
            with _default_float64():
                return step(batch)

        return step_float64

    return build_float64


def first_step_losses(case: ReferenceCase, model: pl.LightningModule, precision: str) -> PairedReferenceClock:
    """Both sides' losses of one step on the first batch, with ``model`` (a fresh copy) in ``precision``."""
    build = _reference_in_float64(case.build_reference) if precision == "64-true" else case.build_reference
    clock = PairedReferenceClock(build, case.ours_losses, warmup=1)
    fit_on_batches(model, case.batches[:1], [clock], accelerator="cpu", precision=precision)
    return clock


def run_case(case: ReferenceCase, group: str, steps: int) -> Row:
    """Both steps on ``case.warmup + steps`` batches (``case.batches`` cycled): median times and agreement."""
    warmup = case.warmup
    checks = "which checks" if warmup == 1 else "the first checks"
    float64 = first_step_losses(case, copy.deepcopy(case.model), "64-true") if case.check_in_float64 else None
    feed = [case.batches[k % len(case.batches)] for k in range(warmup + steps)]
    clock = PairedReferenceClock(case.build_reference, case.ours_losses, warmup)
    fit_on_batches(case.model, feed, [clock], accelerator="cpu")
    if len(clock.ours_s) != steps:
        raise RuntimeError(f"bench: timed {len(clock.ours_s)} steps of {case.name}, expected {steps}")
    agreement = loss_agreement(clock.ours_first, clock.reference_first)
    if float64 is not None:
        exact = loss_agreement(float64.ours_first, float64.reference_first)
        verdict = "NO: " if exact.startswith("NO") else ""
        agreement = (
            f"{verdict}float64 first step: {exact.removeprefix('NO: ')}; "
            f"float32 first step: {agreement.removeprefix('NO: ')}"
        )
    return Row(
        group,
        f"train step: {case.name}",
        case.size,
        statistics.median(clock.ours_s),
        case.peer,
        statistics.median(clock.reference_s),
        agreement,
        f"median of {steps} alternating step(s) after {warmup} warm-up ({checks} the losses); {case.note}".rstrip("; "),
    )
