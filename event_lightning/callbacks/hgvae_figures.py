"""TensorBoard figures for the Hybrid Guided VAE: t-SNE of the latents, reconstructions, traversals.

Every ``every_n_epochs`` epochs (epoch 0 included) the callback keeps, for up to ``max_samples``
samples, the sampled ``z`` (as the reference plots) of the validation steps and of the training
steps (phase A's ``z``, which the training step returns), and writes at the end of validation:

* ``hgvae/tsne``: 2-D t-SNE (scikit-learn) of ``z``, ``z[:, :K]`` and ``z[:, K:]`` of the validation
  set coloured by the guide's class; a good guided VAE shows class clusters in the first two and
  none in the third;
* ``hgvae/reconstructions``: the target ``x*`` above the decoder output, ON minus OFF channel;
* ``hgvae/traversals``: for each guided dimension ``c`` (a row), the decodes of the first sample's
  ``z`` with ``z[c]`` swept from its largest to its smallest value over the collected samples;

and at the end of the training epoch (``train_figures``), from the training latents as the
reference draws them (its ``tsne_train``/``exc_train``/``inhib_train`` and its ``switch`` and
``inhib`` traversals):

* ``hgvae/tsne_train``: the same three t-SNE panels for the training set;
* ``hgvae/traversal_switch``: from the first training sample of class ``c1``, ``z[c1]`` raised from
  its smallest to its largest value while ``z[c2]`` falls from its largest to its smallest
  (``switch_classes = [c1, c2]``; the reference's classes 1 and 2), ``traversal_steps + 1`` decodes;
* ``hgvae/traversal_inhibit``: from the first training sample of class ``c`` (``inhibit_class``) with
  ``z[c]`` at its smallest, step ``i`` sets the unguided dims ``K i .. K i + (D - K) // K - 1`` to their
  largest values, cumulatively (the reference's chunks), ``traversal_steps + 1`` decodes.

A figure whose class has no collected sample is not drawn. The per-batch hooks only keep references
to device tensors (no copy to the host, no wait); the copy and the figures happen once per figure
epoch, on rank 0. The training latents are those of phase A during the epoch (the reference
encodes the training set again after it; the encoder has no train/eval difference, only the
weights move during the epoch), so they cost no extra pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from event_lightning.callbacks.figure_budget import (  # noqa: E402
    DEFAULT_SHARE,
    FigureTimeBudget,
    budgeted_callbacks,
    draws_now,
)

__all__ = ["HGVAEFigures", "inhibit_traversal", "latent_traversal", "switch_traversal", "tsne_embedding"]


def tsne_embedding(
    z: np.ndarray, seed: int = 0, perplexity: float = 30.0, threads: int = 1, iterations: int = 1000
) -> np.ndarray:
    """``[N, D]`` -> ``[N, 2]`` t-SNE (perplexity capped below ``N``) on at most ``threads`` threads.

    ``iterations`` (at least 250, the early-exaggeration phase): its cost is proportional to them.

    One thread by default: the figures run inside training, beside the data-loader workers, and
    t-SNE's OpenMP threads spin-wait for busy cores (on a loaded 2-core machine 500 samples took
    79 s on every core, 8 s on one).
    """
    perplexity = min(perplexity, max(1.0, (len(z) - 1) / 3))
    with threadpool_limits(threads):
        tsne = TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca", max_iter=iterations)
        return tsne.fit_transform(z)


@torch.no_grad()
def latent_traversal(
    decoder: torch.nn.Module,
    z0: torch.Tensor,
    dims: list[int],
    low: torch.Tensor,
    high: torch.Tensor,
    steps: int,
) -> torch.Tensor:
    """Decodes ``[len(dims), steps, C, H, W]`` of ``z0 [D]`` with ``z[d]`` swept from ``high[d]`` to ``low[d]``."""
    rows = []
    for d in dims:
        z = z0.repeat(steps, 1)
        z[:, d] = torch.linspace(float(high[d]), float(low[d]), steps, device=z.device)
        rows.append(decoder(z))
    return torch.stack(rows)


@torch.no_grad()
def switch_traversal(
    decoder: torch.nn.Module,
    z0: torch.Tensor,
    classes: tuple[int, int],
    low: torch.Tensor,
    high: torch.Tensor,
    steps: int,
) -> torch.Tensor:
    """Decodes ``[steps + 1, C, H, W]`` of ``z0 [D]`` with ``z[c1]`` rising from ``low[c1]`` to ``high[c1]``
    while ``z[c2]`` falls from ``high[c2]`` to ``low[c2]`` (``classes = (c1, c2)``).

    The reference steps by ``(|low| + high) / steps``, the same as here whenever ``low <= 0``.
    """
    first, second = classes
    z = z0.repeat(steps + 1, 1)
    z[:, first] = torch.linspace(float(low[first]), float(high[first]), steps + 1, device=z.device)
    z[:, second] = torch.linspace(float(high[second]), float(low[second]), steps + 1, device=z.device)
    return decoder(z)


@torch.no_grad()
def inhibit_traversal(
    decoder: torch.nn.Module,
    z0: torch.Tensor,
    cls: int,
    num_guided: int,
    low: torch.Tensor,
    high: torch.Tensor,
    steps: int,
) -> torch.Tensor:
    """Decodes ``[steps + 1, C, H, W]``: ``z0 [D]`` with ``z[cls] = low[cls]``, then step ``i = 1..steps``
    sets dims ``K i .. K i + (D - K) // K - 1`` (``K = num_guided``; unguided, as ``i >= 1``) to ``high``,
    keeping the earlier steps' (the reference's chunks of the unguided part, one per step).
    """
    dims = z0.shape[0]
    chunk = (dims - num_guided) // num_guided
    z = z0.clone()
    z[cls] = low[cls]
    starts = num_guided * torch.arange(1, steps + 1, device=z.device)[:, None]  # [steps, 1]
    index = torch.arange(dims, device=z.device)
    raised = ((index >= starts) & (index < starts + chunk)).cummax(dim=0).values  # [steps, D], cumulative
    raised = torch.cat([torch.zeros_like(raised[:1]), raised])  # step 0: nothing raised
    return decoder(torch.where(raised, high.to(z.device), z))


def _polarity_image(x: torch.Tensor) -> np.ndarray:
    """``[..., 2, H, W]`` -> ``[..., H, W]`` ON minus OFF (one channel: as is)."""
    x = x.float().cpu()
    return (x[..., 1, :, :] - x[..., 0, :, :] if x.shape[-3] == 2 else x[..., 0, :, :]).numpy()


def _mosaic(images: np.ndarray, gap: int = 1) -> np.ndarray:
    """``[rows, cols, H, W]`` -> one ``[rows (H + gap) - gap, cols (W + gap) - gap]`` image, NaN between tiles."""
    rows, cols, height, width = images.shape
    padded = np.pad(images.astype(np.float32), ((0, 0), (0, 0), (0, gap), (0, gap)), constant_values=np.nan)
    tiled = padded.transpose(0, 2, 1, 3).reshape(rows * (height + gap), cols * (width + gap))
    return tiled[:-gap, :-gap]


class HGVAEFigures(pl.Callback):
    """Write HG-VAE latent figures to TensorBoard every ``every_n_epochs`` epochs.

    Args:
        every_n_epochs: figure period (epochs; epoch 0 included).
        max_samples: samples encoded for each t-SNE and the traversal ranges (validation and training).
        n_reconstructions: target/reconstruction pairs shown.
        traversal_steps: decodes per traversal row (the switch and inhibit traversals show one more).
        train_figures: also draw the training-set t-SNE and the switch and inhibit traversals.
        switch_classes: ``[c1, c2]`` of the switch traversal.
        inhibit_class: class of the inhibit traversal's starting sample.
        tsne_threads: threads of each t-SNE (more only where cores are idle during training).
        tsne_iterations: optimisation steps of each t-SNE (>= 250; scikit-learn's 1000 by default); the
            figures' cost is mostly the six t-SNEs of a figure epoch, proportional to these steps.
        time_budget: share of the training wall time all the run's figures may take (default 0.05;
            null: every ``every_n_epochs`` epochs); see :mod:`event_lightning.callbacks.figure_budget`.
            The training-set and validation figures are decided and timed apart.
    """

    def __init__(
        self,
        every_n_epochs: int = 10,
        max_samples: int = 500,
        n_reconstructions: int = 8,
        traversal_steps: int = 10,
        train_figures: bool = True,
        switch_classes: list[int] | None = None,
        inhibit_class: int = 1,
        tsne_threads: int = 1,
        tsne_iterations: int = 1000,
        time_budget: float | None = DEFAULT_SHARE,
    ) -> None:
        super().__init__()
        if every_n_epochs < 1:
            raise ValueError(f"HGVAEFigures.every_n_epochs must be >= 1, found {every_n_epochs}")
        switch_classes = [1, 2] if switch_classes is None else list(switch_classes)
        if len(switch_classes) != 2 or switch_classes[0] == switch_classes[1]:
            raise ValueError(f"HGVAEFigures.switch_classes must be two different classes, found {switch_classes}")
        self.every_n_epochs, self.max_samples = every_n_epochs, max_samples
        self.n_reconstructions, self.traversal_steps = n_reconstructions, traversal_steps
        self.train_figures = train_figures
        self.switch_classes: tuple[int, int] = (switch_classes[0], switch_classes[1])
        self.inhibit_class = inhibit_class
        if tsne_iterations < 250:
            raise ValueError(f"HGVAEFigures.tsne_iterations must be >= 250, found {tsne_iterations}")
        self.tsne_threads, self.tsne_iterations = tsne_threads, tsne_iterations
        self.figure_budget = FigureTimeBudget(time_budget)
        self._train_active = self._val_active = False
        self._collected: dict[str, list[torch.Tensor]] = {}
        self._collected_train: dict[str, list[torch.Tensor]] = {}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.figure_budget.start(budgeted_callbacks(trainer))

    def _full(self, collected: list[torch.Tensor]) -> bool:
        return sum(len(t) for t in collected) >= self.max_samples

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._collected_train = {"z": [], "target": []}
        self._train_active = self.train_figures and draws_now(trainer, self.every_n_epochs, self.figure_budget)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Keeps the training step's ``z`` and the targets, on the device."""
        if not (self._train_active and isinstance(outputs, Mapping) and "z" in outputs):
            return
        if self._full(self._collected_train["z"]):
            return
        self._collected_train["z"].append(outputs["z"].detach())
        self._collected_train["target"].append(batch["target"])

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        experiment = getattr(trainer.logger, "experiment", None)
        if not (self._train_active and self._collected_train.get("z") and hasattr(experiment, "add_figure")):
            return
        with self.figure_budget.drawing():
            self._draw_train_figures(experiment, trainer, pl_module)

    def _draw_train_figures(self, experiment: Any, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        z = torch.cat(self._collected_train["z"])[: self.max_samples].float().cpu()
        target = torch.cat(self._collected_train["target"])[: self.max_samples].cpu()
        k, step = pl_module.num_guided, trainer.current_epoch
        self._collected_train = {"z": [], "target": []}
        if len(z) >= 5:
            experiment.add_figure("hgvae/tsne_train", self._tsne_figure(z.numpy(), target.numpy(), k), global_step=step)
        decoder = pl_module.net.decoder
        device = next(decoder.parameters()).device
        low, high = z.min(0).values.to(device), z.max(0).values.to(device)
        first, second = self.switch_classes
        if (target == first).any() and second < k:
            z0 = z[target == first][0].to(device)
            row = switch_traversal(decoder, z0, self.switch_classes, low, high, self.traversal_steps)
            label = f"class {first}: z[{first}] up, z[{second}] down"
            figure = self._traversal_figure(row[None], [label])
            experiment.add_figure("hgvae/traversal_switch", figure, global_step=step)
        if (target == self.inhibit_class).any():
            z0 = z[target == self.inhibit_class][0].to(device)
            row = inhibit_traversal(decoder, z0, self.inhibit_class, k, low, high, self.traversal_steps)
            label = f"class {self.inhibit_class}: unguided chunks to their maxima"
            figure = self._traversal_figure(row[None], [label])
            experiment.add_figure("hgvae/traversal_inhibit", figure, global_step=step)
        plt.close("all")

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._collected = {"z": [], "target": [], "x_star": [], "recon": []}
        self._val_active = draws_now(trainer, self.every_n_epochs, self.figure_budget)

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: dict[str, torch.Tensor],
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Keeps ``outputs`` (``z``, ``recon``, ``x_star`` of the step) and the targets, on the device."""
        if not self._val_active or self._full(self._collected["z"]):
            return
        self._collected["z"].append(outputs["z"].detach())
        self._collected["target"].append(batch["target"])
        if sum(len(t) for t in self._collected["recon"]) < self.n_reconstructions:
            self._collected["x_star"].append(outputs["x_star"].detach())
            self._collected["recon"].append(outputs["recon"].detach())

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._val_active or not self._collected.get("z"):
            return
        experiment = getattr(trainer.logger, "experiment", None)
        if not hasattr(experiment, "add_figure"):
            return
        with self.figure_budget.drawing():
            self._draw_validation_figures(experiment, trainer, pl_module)

    def _draw_validation_figures(self, experiment: Any, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        z = torch.cat(self._collected["z"])[: self.max_samples].float().cpu()
        target = torch.cat(self._collected["target"])[: self.max_samples].cpu().numpy()
        k = pl_module.num_guided
        step = trainer.current_epoch
        if len(z) >= 5:
            experiment.add_figure("hgvae/tsne", self._tsne_figure(z.numpy(), target, k), global_step=step)
        x_star = torch.cat(self._collected["x_star"])[: self.n_reconstructions]
        recon = torch.cat(self._collected["recon"])[: self.n_reconstructions]
        experiment.add_figure("hgvae/reconstructions", self._pairs_figure(x_star, recon), global_step=step)
        decoder = pl_module.net.decoder
        device = next(decoder.parameters()).device
        grid = latent_traversal(
            decoder, z[0].to(device), list(range(k)), z.min(0).values, z.max(0).values, self.traversal_steps
        )
        figure = self._traversal_figure(grid, [f"z[{d}]" for d in range(k)])
        experiment.add_figure("hgvae/traversals", figure, global_step=step)
        plt.close("all")

    def _tsne_figure(self, z: np.ndarray, target: np.ndarray, k: int) -> plt.Figure:
        fig, axes = plt.subplots(1, 3, figsize=(15, 5))
        for ax, (title, part) in zip(
            axes, (("z", z), ("z[:, :K] (guided)", z[:, :k]), ("z[:, K:] (unguided)", z[:, k:])), strict=True
        ):
            xy = tsne_embedding(part, threads=self.tsne_threads, iterations=self.tsne_iterations)
            scatter = ax.scatter(xy[:, 0], xy[:, 1], c=target, cmap="tab10", s=8)
            ax.set_title(title)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(scatter, ax=axes, label="class")
        return fig

    @staticmethod
    def _pairs_figure(x_star: torch.Tensor, recon: torch.Tensor) -> plt.Figure:
        """Targets above their reconstructions, one mosaic image (one axes, not one per image: the
        axes cost most of the drawing); each column on the colour scale of its target."""
        targets, decoded = _polarity_image(x_star), _polarity_image(recon)  # [n, H, W]
        limits = np.maximum(np.abs(targets).max(axis=(1, 2), keepdims=True), 1e-6)
        images = np.clip(np.stack([targets, decoded]) / limits, -1.0, 1.0)  # [2, n, H, W]
        height = images.shape[2]
        fig, ax = plt.subplots(figsize=(2 * images.shape[1], 4))
        ax.imshow(_mosaic(images), cmap="bwr", vmin=-1.0, vmax=1.0)
        ax.set_xticks([])
        ax.set_yticks((height + 1) * np.arange(2) + height / 2, ["target x*", "reconstruction"], fontsize=9)
        return fig

    @staticmethod
    def _traversal_figure(grid: torch.Tensor, labels: list[str]) -> plt.Figure:
        """One row of decodes per label: ``grid [rows, steps, C, H, W]``, drawn as one mosaic image
        (one ``imshow``, not one axes per decode: ten times faster to draw)."""
        images = _polarity_image(grid)  # [rows, steps, H, W]
        rows, cols, height, width = images.shape
        limit = max(float(np.abs(images).max()), 1e-6)
        fig, ax = plt.subplots(figsize=(1.2 * cols, 1.2 * rows + 0.3))
        ax.imshow(_mosaic(images), cmap="bwr", vmin=-limit, vmax=limit)
        ax.set_xticks([])
        ax.set_yticks((height + 1) * np.arange(rows) + height / 2, labels, fontsize=7)
        return fig
