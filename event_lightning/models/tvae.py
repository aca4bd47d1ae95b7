"""The Topographic VAE (Keller & Welling, NeurIPS 2021) as a LightningModule.

Batches are ``(x [B, S, C, H, W] in [0, 1], target)``: target is the digit labels [B] (MNIST
sequences) or the factor indices [B, S, F] (dSprites sequences, which enables CapCorr).
The loss is the reference's: (summed Bernoulli NLL + summed KL(z) + summed KL(u)) / (B * S).
Logged: ``{stage}/loss``, ``{stage}/neg_log_px_z``, ``{stage}/kl``, ``{stage}/eq_error``
(capsule models with S > 1), ``{val,test}/log_px_is`` (importance-sampled log p(x) per image),
``{stage}/capcorr_<factor>`` (factor targets), ``train/mu``.  Evaluation values are averaged
over all processes (``sync_dist``; the metric objects synchronise themselves).

``compile: true`` compiles the network on whole sequences with a symbolic batch size: one graph
for training and one for evaluation, whatever the batch size.  Under ``bf16-mixed`` the encoder and
decoder matrix products run in bf16; posterior parameters, samples, the grouper, logits and the
loss in float32.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import MeanMetric

from event_lightning.metrics.tvae import CapCorr, EquivarianceError
from event_lightning.models.base import CompilableModule, run_compiled
from event_lightning.nn.tvae import TVAENet, TVAEOutput

STAGES = ("train", "val", "test")
DSPRITES_FACTORS = ["shape", "scale", "orientation", "posX", "posY"]


class TopographicVAE(CompilableModule):
    """Topographic VAE / Bubbles / 2-D TVAE / plain VAE on image sequences.

    Args:
        n_time_steps: sequence length S (linked from the DataModule).
        grouper: "shifting" (TVAE), "stationary" (Bubbles, L0), "torus2d" (2-D TVAE) or "none" (VAE).
        n_caps, cap_dim: capsules and units per capsule (D = n_caps * cap_dim).
        group_kernel: (kT, kC) window of the grouper over time and capsule index ((k, k) for torus2d).
        n_off_diag: half-width of the shifting kernel's band (K = 2 n_off_diag + 1).
        mu_init, eps: t = (z + mu) / sqrt(W u^2 + eps), mu learnable from mu_init.
        image_channels, image_size: input images [C, size, size].
        lr, momentum: SGD (constant learning rate, as in the reference).
        n_is_samples: importance samples K of the validation/test log-likelihood.
        is_subtract_log_k: subtract log K (a proper estimator); False reproduces the reference's
            numbers, which are log K (2.30 nats at K = 10) too high.
        factor_names: names of the target's factor columns for CapCorr logging.
        capcorr_factors: the factors to log CapCorr for (those a sequence transforms).
    """

    def __init__(
        self,
        n_time_steps: int = 18,
        grouper: str = "shifting",
        n_caps: int = 18,
        cap_dim: int = 18,
        group_kernel: list[int] | None = None,
        n_off_diag: int = 1,
        mu_init: float = 30.0,
        eps: float = 1e-6,
        image_channels: int = 3,
        image_size: int = 28,
        lr: float = 1e-4,
        momentum: float = 0.9,
        n_is_samples: int = 10,
        is_subtract_log_k: bool = True,
        factor_names: list[str] | None = None,
        capcorr_factors: list[str] | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__(compile=compile)
        self.save_hyperparameters()
        self.seq_len = n_time_steps
        self.net = TVAENet(
            image_channels=image_channels,
            image_size=image_size,
            n_caps=n_caps,
            cap_dim=cap_dim,
            seq_len=n_time_steps,
            grouper=grouper,
            group_kernel=list(group_kernel or [13, 13]),
            n_off_diag=n_off_diag,
            mu_init=mu_init,
            eps=eps,
        )
        self.factor_names = list(factor_names or DSPRITES_FACTORS)
        self.capcorr_factors = list(capcorr_factors or ["scale", "orientation", "posX", "posY"])
        unknown = [f for f in self.capcorr_factors if f not in self.factor_names]
        if unknown:
            raise ValueError(f"capcorr_factors {unknown} are not among factor_names {self.factor_names}")
        # E_eq compares capsules across frames: only defined for capsule models over sequences.
        self.has_eq = n_time_steps > 1
        # ModuleDict keys may not shadow nn.Module attributes such as "train": suffix them.
        self.eq = torch.nn.ModuleDict({f"{s}_eq": EquivarianceError(n_caps, cap_dim, n_time_steps) for s in STAGES})
        self.capcorr = torch.nn.ModuleDict(
            {f"{s}_capcorr": CapCorr(len(self.factor_names), n_caps, cap_dim) for s in STAGES}
        )
        # nan_strategy "disable": the default checks every update for NaNs on the host (a sync per step);
        # a NaN log-likelihood then shows in the logged mean instead of being dropped.
        self.log_px_is = torch.nn.ModuleDict(
            {f"{s}_log_px": MeanMetric(nan_strategy="disable") for s in ("val", "test")}
        )

    def _frames(self, x: Tensor) -> Tensor:
        expected = (self.seq_len, *self.net.image_shape)
        if x.dim() != 5 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"TopographicVAE expects x [B, {', '.join(map(str, expected))}] (S = n_time_steps frames), "
                f"got {tuple(x.shape)}; check the model's image_channels / image_size against the data"
            )
        return x.reshape(-1, *x.shape[2:])

    def forward(self, x: Tensor, sample: bool = True) -> TVAEOutput:
        """x [B, S, C, H, W] -> the network output over the B * S frames."""
        self._frames(x)  # checks the shape
        return run_compiled(self.net, x, sample=sample) if self._compiled else self.net(x, sample=sample)

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, target = batch
        out = self(x)
        loss = out.loss()
        batch_size, n_frames = x.shape[0], x.shape[0] * x.shape[1]
        on_step = stage == "train"
        # Evaluation values average over all processes; the training loss is logged per process.
        sync = stage != "train"
        self.log(
            f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=batch_size, sync_dist=sync
        )
        self.log(
            f"{stage}/neg_log_px_z",
            out.neg_log_px.sum() / n_frames,
            on_step=on_step,
            on_epoch=True,
            batch_size=batch_size,
            sync_dist=sync,
        )
        self.log(
            f"{stage}/kl",
            (out.kl_z.sum() + out.kl_u.sum()) / n_frames,
            on_step=on_step,
            on_epoch=True,
            batch_size=batch_size,
            sync_dist=sync,
        )
        if self.has_eq:
            self.eq[f"{stage}_eq"].update(out.t.detach())
            self.log(f"{stage}/eq_error", self.eq[f"{stage}_eq"], on_step=False, on_epoch=True, batch_size=batch_size)
        if target.dim() == 3:
            self.capcorr[f"{stage}_capcorr"].update(out.t.detach().view(batch_size, self.seq_len, -1), target)
        if stage != "train":
            log_px = self.net.importance_log_likelihood(
                self._frames(x), self.hparams.n_is_samples, self.hparams.is_subtract_log_k
            )
            self.log_px_is[f"{stage}_log_px"].update(log_px)
            self.log(
                f"{stage}/log_px_is",
                self.log_px_is[f"{stage}_log_px"],
                on_step=False,
                on_epoch=True,
                batch_size=batch_size,
            )
        return loss

    def _log_capcorr(self, stage: str) -> None:
        metric = self.capcorr[f"{stage}_capcorr"]
        if not metric.update_called:
            return
        values = metric.compute()
        for name in self.capcorr_factors:
            value = values[self.factor_names.index(name)]
            if not torch.isnan(value):
                self.log(f"{stage}/capcorr_{name}", value.item())
        metric.reset()

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = self._step(batch, "train")
        if self.net.grouper.uses_u:
            self.log("train/mu", self.net.grouper.mu.detach()[0], on_step=False, on_epoch=True, batch_size=1)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "test")

    def on_train_epoch_end(self) -> None:
        self._log_capcorr("train")

    def on_validation_epoch_end(self) -> None:
        self._log_capcorr("val")

    def on_test_epoch_end(self) -> None:
        self._log_capcorr("test")

    def predict_step(self, batch: tuple[Tensor, Tensor], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        x, target = batch
        out = self(x, sample=False)
        shape = (x.shape[0], self.seq_len)
        return {
            "t": out.t.view(*shape, -1),
            "reconstruction": torch.sigmoid(out.logits).view(x.shape),
            "target": target,
        }

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=self.hparams.momentum)
