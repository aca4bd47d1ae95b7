"""TensorBoard figures for the Hybrid Guided VAE: t-SNE of the latents, reconstructions, traversals.

Every ``every_n_epochs`` validation epochs, the callback keeps what the validation steps returned for
up to ``max_samples`` samples (sampled ``z``, as the reference plots) and writes:

* ``hgvae/tsne``: 2-D t-SNE (scikit-learn) of ``z``, ``z[:, :K]`` and ``z[:, K:]`` coloured by the
  guide's class; a good guided VAE shows class clusters in the first two and none in the third;
* ``hgvae/reconstructions``: the target ``x*`` above the decoder output, ON minus OFF channel;
* ``hgvae/traversals``: for each guided dimension ``c`` (a row), the decodes of the first sample's
  ``z`` with ``z[c]`` swept from its largest to its smallest value over the collected samples.

The per-batch hook only keeps references to device tensors (no copy to the host, no wait); the
copy and the figures happen once, at the end of the epoch, on rank 0.
"""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402

__all__ = ["HGVAEFigures", "latent_traversal", "tsne_embedding"]


def tsne_embedding(z: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """``[N, D]`` -> ``[N, 2]`` t-SNE (perplexity capped below ``N``)."""
    perplexity = min(perplexity, max(1.0, (len(z) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(z)


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


def _polarity_image(x: torch.Tensor) -> np.ndarray:
    """``[..., 2, H, W]`` -> ``[..., H, W]`` ON minus OFF (one channel: as is)."""
    x = x.float().cpu()
    return (x[..., 1, :, :] - x[..., 0, :, :] if x.shape[-3] == 2 else x[..., 0, :, :]).numpy()


class HGVAEFigures(pl.Callback):
    """Write HG-VAE latent figures to TensorBoard every ``every_n_epochs`` validation epochs.

    Args:
        every_n_epochs: figure period (epochs; epoch 0 included).
        max_samples: validation samples encoded for the t-SNE and the traversal ranges.
        n_reconstructions: target/reconstruction pairs shown.
        traversal_steps: decodes per traversal row.
    """

    def __init__(
        self,
        every_n_epochs: int = 10,
        max_samples: int = 500,
        n_reconstructions: int = 8,
        traversal_steps: int = 10,
    ) -> None:
        super().__init__()
        if every_n_epochs < 1:
            raise ValueError(f"HGVAEFigures.every_n_epochs must be >= 1, found {every_n_epochs}")
        self.every_n_epochs, self.max_samples = every_n_epochs, max_samples
        self.n_reconstructions, self.traversal_steps = n_reconstructions, traversal_steps
        self._collected: dict[str, list[torch.Tensor]] = {}

    def _active(self, trainer: pl.Trainer) -> bool:
        return (
            trainer.is_global_zero
            and not trainer.sanity_checking
            and trainer.current_epoch % self.every_n_epochs == 0
        )

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._collected = {"z": [], "target": [], "x_star": [], "recon": []}

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
        if not self._active(trainer) or sum(len(t) for t in self._collected["z"]) >= self.max_samples:
            return
        self._collected["z"].append(outputs["z"].detach())
        self._collected["target"].append(batch["target"])
        if sum(len(t) for t in self._collected["recon"]) < self.n_reconstructions:
            self._collected["x_star"].append(outputs["x_star"].detach())
            self._collected["recon"].append(outputs["recon"].detach())

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._active(trainer) or not self._collected.get("z"):
            return
        experiment = getattr(trainer.logger, "experiment", None)
        if not hasattr(experiment, "add_figure"):
            return
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
        experiment.add_figure("hgvae/traversals", self._traversal_figure(grid), global_step=step)
        plt.close("all")

    @staticmethod
    def _tsne_figure(z: np.ndarray, target: np.ndarray, k: int) -> plt.Figure:
        fig, axes = plt.subplots(1, 3, figsize=(15, 5))
        for ax, (title, part) in zip(
            axes, (("z", z), ("z[:, :K] (guided)", z[:, :k]), ("z[:, K:] (unguided)", z[:, k:])), strict=True
        ):
            xy = tsne_embedding(part)
            scatter = ax.scatter(xy[:, 0], xy[:, 1], c=target, cmap="tab10", s=8)
            ax.set_title(title)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(scatter, ax=axes, label="class")
        return fig

    @staticmethod
    def _pairs_figure(x_star: torch.Tensor, recon: torch.Tensor) -> plt.Figure:
        n = len(x_star)
        fig, axes = plt.subplots(2, n, figsize=(2 * n, 4), squeeze=False)
        for i, (a, b) in enumerate(zip(_polarity_image(x_star), _polarity_image(recon), strict=True)):
            limit = max(float(np.abs(a).max()), 1e-6)
            for row, image in ((0, a), (1, b)):
                axes[row, i].imshow(image, cmap="bwr", vmin=-limit, vmax=limit)
                axes[row, i].axis("off")
        axes[0, 0].set_title("target x*", loc="left")
        axes[1, 0].set_title("reconstruction", loc="left")
        return fig

    @staticmethod
    def _traversal_figure(grid: torch.Tensor) -> plt.Figure:
        images = _polarity_image(grid)  # [K, steps, H, W]
        rows, cols = images.shape[:2]
        fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.2 * rows), squeeze=False)
        limit = max(float(np.abs(images).max()), 1e-6)
        for r in range(rows):
            for c in range(cols):
                axes[r, c].imshow(images[r, c], cmap="bwr", vmin=-limit, vmax=limit)
                axes[r, c].axis("off")
            axes[r, 0].set_title(f"z[{r}]", fontsize=7, loc="left")
        return fig
