"""Checking that every DDP rank holds the same weights.

DDP keeps replicas equal only if every rank starts from the same weights and applies the same
averaged gradients. Anything a model does on its own rank -- an initialisation computed from the
rank's first batch, a parameter updated outside the reducer, a buffer changed after the forward
broadcast -- makes the replicas drift apart silently, and the run trains ``world_size`` different
models while reporting one. :class:`RankConsistencyCheck` compares a fingerprint of every
parameter and buffer across ranks and stops the run, naming the first tensor that differs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

__all__ = ["RankDivergenceError", "RankConsistencyCheck", "weight_fingerprints"]


class RankDivergenceError(RuntimeError):
    """Two DDP ranks hold different weights."""


def weight_fingerprints(module: torch.nn.Module) -> tuple[list[str], torch.Tensor]:
    """Names and ``[N, 3]`` float64 fingerprints of every parameter and floating buffer.

    A fingerprint is (sum, sum of squares, position-weighted sum): equal tensors give equal
    rows bit for bit, and a permutation or a single changed element changes the third column.
    """
    names, rows = [], []
    tensors = [*module.named_parameters(), *module.named_buffers()]
    for name, tensor in tensors:
        if not tensor.is_floating_point():
            continue
        flat = tensor.detach().reshape(-1).double()
        position = torch.linspace(1.0, 2.0, flat.numel(), dtype=torch.float64, device=flat.device)
        rows.append(torch.stack([flat.sum(), flat.square().sum(), (flat * position).sum()]))
        names.append(name)
    if not rows:
        return names, torch.zeros(0, 3, dtype=torch.float64)
    return names, torch.stack(rows)


class RankConsistencyCheck(Callback):
    """Compares weights across DDP ranks and raises :class:`RankDivergenceError` when they differ.

    Checks after the first training batch (so a data-dependent initialisation on that batch is
    covered), every ``every_n_steps`` optimiser steps, and at the end of training. Each check
    gathers ``[N, 3]`` fingerprints from every rank (one collective, one host read): keep
    ``every_n_steps`` large on long runs, or 0 for the first batch and the end only.

    Args:
        every_n_steps: optimiser steps between checks; 0 = only after the first batch and at the end.
        atol: largest absolute fingerprint difference tolerated (0: replicas are bit-identical
            under DDP, which averages gradients before every rank applies the same update).
        report_dir: if set, every rank writes ``rank<R>.json`` there with its fingerprints at the
            last check (for tests and post-mortems).
    """

    def __init__(self, every_n_steps: int = 0, atol: float = 0.0, report_dir: str | None = None) -> None:
        if every_n_steps < 0:
            raise ValueError(f"every_n_steps must be >= 0, found {every_n_steps}")
        if atol < 0:
            raise ValueError(f"atol must be >= 0, found {atol}")
        self.every_n_steps = every_n_steps
        self.atol = atol
        self.report_dir = report_dir
        self.checks = 0
        self._batches, self._checked_at = 0, -1

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._batches, self._checked_at = 0, -1

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:
        self._batches += 1
        # global_step counts optimiser steps (several per batch under manual optimisation)
        due = self.every_n_steps and trainer.global_step // self.every_n_steps > self._checked_at // self.every_n_steps
        if self._batches == 1 or due:
            self.check(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step != self._checked_at:
            self.check(trainer, pl_module)

    def check(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Compare the fingerprints of all ranks now; raise on the first tensor that differs."""
        self._checked_at = trainer.global_step
        names, local = weight_fingerprints(pl_module)
        gathered = trainer.strategy.all_gather(local)
        everyone = gathered if trainer.world_size > 1 else local.unsqueeze(0)
        self.checks += 1
        if self.report_dir is not None:
            self._write_report(trainer, names, local)
        difference = (everyone - everyone[:1]).abs().amax(dim=(0, 2)).cpu()
        bad = torch.nonzero(difference > self.atol).flatten().tolist()
        if bad:
            first = bad[0]
            raise RankDivergenceError(
                f"DDP ranks hold different weights at global step {trainer.global_step}: {len(bad)} of "
                f"{len(names)} tensors differ, first {names[first]!r} (fingerprint difference "
                f"{difference[first].item():.3g} > atol {self.atol}). Something changed weights on one "
                "rank only (a data-dependent initialisation not broadcast, or an update outside DDP)."
            )

    def _write_report(self, trainer: pl.Trainer, names: list[str], local: torch.Tensor) -> None:
        folder = Path(self.report_dir)
        folder.mkdir(parents=True, exist_ok=True)
        report = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "global_step": trainer.global_step,
            "checks": self.checks,
            "fingerprints": dict(zip(names, local.cpu().tolist(), strict=True)),
        }
        (folder / f"rank{trainer.global_rank}.json").write_text(json.dumps(report))
