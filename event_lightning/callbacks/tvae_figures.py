"""Topographic VAE figures for TensorBoard: capsule traversals, reconstructions, prior samples."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from event_lightning.callbacks.figure_budget import DEFAULT_SHARE, FigureTimeBudget, budgeted_callbacks, draws_now
from event_lightning.nn.tvae import TVAENet


def make_grid(images: Tensor, n_columns: int, padding: int = 2, pad_value: float = 1.0) -> Tensor:
    """Tile images [N, C, H, W] row by row into one image [C, rows * (H + p) + p, n_columns * (W + p) + p]."""
    n, channels, height, width = images.shape
    n_rows = max(1, math.ceil(n / n_columns))
    canvas = images.new_full((n_rows * n_columns, channels, height + padding, width + padding), pad_value)
    canvas[:n, :, padding:, padding:] = images
    canvas = canvas.view(n_rows, n_columns, channels, height + padding, width + padding)
    canvas = canvas.permute(2, 0, 3, 1, 4).reshape(
        channels, n_rows * (height + padding), n_columns * (width + padding)
    )
    return torch.nn.functional.pad(canvas, (0, padding, 0, padding), value=pad_value)


@torch.no_grad()
def capsule_traversal_grid(net: TVAENet, sequences: Tensor) -> Tensor:
    """Three rows per sequence: the input frames, their reconstructions, and decode(Roll_i(t_0)).

    If the capsules roll one position per frame, row 3 reproduces row 1. Uses posterior means.

    Args:
        sequences: [n, S, C, H, W] in [0, 1].
    Returns:
        image [C, H', W'] with max(S, cap_dim) columns.
    """
    n, seq_len = sequences.shape[:2]
    frames = sequences.reshape(-1, *sequences.shape[2:])
    out = net(frames, sample=False)
    reconstructions = torch.sigmoid(out.logits).view(sequences.shape)
    first = out.t.view(n, seq_len, -1)[:, 0]  # [n, D]
    cap_dim = net.grouper.cap_dim
    rolled = torch.stack([net.roll_capsules(first, i) for i in range(cap_dim)], 1)  # [n, cap_dim, D]
    traversal = net.decode(rolled.reshape(n * cap_dim, -1)).view(n, cap_dim, *sequences.shape[2:])
    columns = max(seq_len, cap_dim)

    def padded(row: Tensor) -> Tensor:
        return (
            torch.cat([row, row.new_ones(columns - row.shape[0], *row.shape[1:])])
            if row.shape[0] < columns
            else row
        )

    rows = [padded(r) for i in range(n) for r in (sequences[i], reconstructions[i], traversal[i])]
    return make_grid(torch.cat(rows).float().cpu(), columns)


@torch.no_grad()
def prior_sample_grid(net: TVAENet, n_sequences: int, seed: int = 0) -> Tensor:
    """Bernoulli means of sequences with z, u ~ N(0, I): one row per sequence (a square grid if S == 1)."""
    device = next(net.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    samples = net.sample_prior(n_sequences, generator=generator).float().cpu()
    seq_len = net.grouper.seq_len
    columns = seq_len if seq_len > 1 else max(1, math.isqrt(n_sequences))
    return make_grid(samples, columns)


class TVAEFigures(pl.Callback):
    """Logs figures of a TopographicVAE to the TensorBoard logger after validation.

    Args:
        every_n_epochs: log at validation ends of epochs divisible by this.
        n_sequences: validation sequences in the traversal / reconstruction figure.
        n_prior_samples: sequences (or images for S == 1) drawn from the prior.
        time_budget: share of the training wall time all the run's figures may take (default 0.05;
            null: every ``every_n_epochs`` epochs); see :mod:`event_lightning.callbacks.figure_budget`.
    Tags: ``figures/capsule_traversal`` (capsule models with S > 1), ``figures/prior_samples``.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        n_sequences: int = 4,
        n_prior_samples: int = 64,
        time_budget: float | None = DEFAULT_SHARE,
    ) -> None:
        super().__init__()
        self.every_n_epochs = every_n_epochs
        self.figure_budget = FigureTimeBudget(time_budget)
        self.n_sequences = n_sequences
        self.n_prior_samples = n_prior_samples
        self._sequences: Tensor | None = None

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx == 0 and dataloader_idx == 0:
            self._sequences = batch[0][: self.n_sequences].detach()

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        sequences, self._sequences = self._sequences, None
        if not draws_now(trainer, self.every_n_epochs, self.figure_budget):
            return
        experiment = getattr(trainer.logger, "experiment", None)
        if not hasattr(experiment, "add_image"):
            return
        with self.figure_budget.drawing():
            self._draw(experiment, pl_module.net, trainer.global_step, sequences)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.figure_budget.start(budgeted_callbacks(trainer))

    def _draw(self, experiment: Any, net: TVAENet, step: int, sequences: Tensor | None) -> None:
        was_training = net.training
        net.eval()
        # Eager even when the network is compiled: a figure once per epoch is not worth graphs of
        # its own (other batch sizes, posterior means), and it must not cost recompiles.
        with torch.compiler.set_stance("force_eager"):
            if sequences is not None and sequences.shape[1] > 1:
                experiment.add_image("figures/capsule_traversal", capsule_traversal_grid(net, sequences), step)
            if self.n_prior_samples > 0:
                experiment.add_image("figures/prior_samples", prior_sample_grid(net, self.n_prior_samples), step)
        net.train(was_training)
