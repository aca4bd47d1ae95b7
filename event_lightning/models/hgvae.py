"""The Hybrid Guided VAE as a LightningModule: three training phases, four optimisers.

One training step (manual optimisation), each phase followed by a step of every optimiser that
received gradients (with ``legacy_zero_grad_steps``, of all four, as under the torch 1.10 the
reference ran on; see :meth:`HybridGuidedVAE._phase_step`):

A. VAE + excitation: ``L_A = MSE(x_hat, x*) + vae_beta * KL / N_batches + w * MLSM_sum(exc(z[:, :K]), onehot(y))``.
B. Inhibition net on a fresh, DETACHED sample: ``L_B = w * MLSM_sum(inh(z'[:, K:]), onehot(y))``.
C. Adversarial: the encoder runs again, ``L_C = w * MLSM_sum(inh(z[:, K:]), 0.5)``: the unguided part
   is pushed to carry no class information. As in the reference the gradient also reaches the
   inhibition net's own weights (pulling its outputs to 0); ``freeze_guide_in_adversarial: true``
   gives Guided-VAE proper, where phase C moves only the encoder and the heads.

``x*`` is the double causal exponential filter of the input read at the end of the window, x50
(:func:`reconstruction_weights`, the weights of
:func:`event_lightning.events.represent.trace.double_exponential_trace` built on the device); MLSM is
``MultiLabelSoftMarginLoss(reduction='sum')``. Optimisers: Adamax (encoder; betas (0, 0.95), eps
1e-4), Adam (heads + decoder), Adam (excitation net), Adam (inhibition net); at the start of epoch
``e`` each learning rate is ``lr0`` for ``e < I`` and ``lr0 / (floor(e / I) * F)`` afterwards.

On a GPU and across processes:

* Steps never wait on the host: batches cross the bus as uint8/int16 counts and become float32 on
  the device (the DataModules' ``on_after_batch_transfer``; the network and the target accept
  counts of any dtype too); constants (one-hot targets, the target filter) are built on the
  device; whether LSUV is still due is a Python flag, read from its buffer once per fit.
* Under DDP (plain ``strategy: ddp``): each phase backpropagates through a different subset of
  the parameters, so the others join its loss with weight zero (DDP's reducer expects a gradient
  for every parameter in every backward) and their zero gradients are dropped before the step, so
  no optimiser moves them (as in one process). LSUV runs on rank 0's first batch and the encoder is
  broadcast; the guides' BatchNorm running statistics are averaged over the ranks after every
  step (each rank normalises with its own batch, as in one process with that batch).
* Under bf16/fp16 autocast the target filter and the encoder's traces stay float32
  (:mod:`event_lightning.nn.decolle`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
import torchmetrics
from torch import nn

from event_lightning.events.represent.trace import exponential_filter_taps
from event_lightning.models.base import CompilableModule
from event_lightning.nn.decolle import DecolleEncoderConfig
from event_lightning.nn.hgvae import (
    LSUV_RULES,
    GuideClassifier,
    HybridGuidedVAENet,
    kl_divergence,
    lsuv_init,
    reparameterize,
)

__all__ = ["HybridGuidedVAE", "learning_rate_at_epoch", "multilabel_soft_margin_sum", "reconstruction_weights"]


def multilabel_soft_margin_sum(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per sample, the mean over classes of sigmoid BCE with logits; summed over the batch."""
    return F.multilabel_soft_margin_loss(logits, targets, reduction="sum")


def reconstruction_weights(
    n_steps: int, *, alpha: float, beta: float, scale: float = 50.0, device: torch.device | None = None
) -> torch.Tensor:
    """Weight of each step ``t = 0..T-1`` in the target ``x*`` -> ``[T]`` float64 on ``device``.

    The same numbers as :func:`event_lightning.events.represent.trace.double_exponential_weights`
    (``scale * (k_s * k_m)[T - t - 2]``, two truncated exponential kernels normalised to sum 1),
    built in float64 on the device from ``arange`` so that a step never copies them from the host.
    """
    kernels = []
    for decay in (beta, alpha):
        taps = torch.arange(exponential_filter_taps(decay), dtype=torch.float64, device=device)
        k = torch.exp(-taps / (1 / (1 - decay)))
        kernels.append(k / k.sum())
    synaptic, membrane = kernels
    lag = n_steps - 2 - torch.arange(n_steps, device=device)  # index into the cascade for step t
    # cascade[lag] = sum_j synaptic[j] * membrane[lag - j] over the j where both kernels are defined
    inner = lag[:, None] - torch.arange(len(synaptic), device=device)
    inside = (inner >= 0) & (inner < len(membrane))
    terms = torch.where(inside, synaptic * membrane[inner.clamp(0, len(membrane) - 1)], 0.0)
    return scale * terms.sum(dim=1)


def _broadcast_from_rank_zero(module: nn.Module) -> None:
    """Rank 0's parameters and buffers of ``module`` on every rank (no-op without a process group)."""
    if dist.is_available() and dist.is_initialized():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def _average_over_ranks(tensors: list[torch.Tensor]) -> None:
    """Replace each tensor by its mean over the ranks: one all-reduce, no host sync (no-op alone)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1 or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    for tensor, chunk in zip(tensors, flat.split([t.numel() for t in tensors]), strict=True):
        tensor.copy_(chunk.view_as(tensor))


def learning_rate_at_epoch(lr0: float, epoch: int, interval: int, factor: float) -> float:
    """The reference's step drop: ``lr0`` if ``epoch < interval`` else ``lr0 / (floor(epoch / interval) * factor)``."""
    if epoch < interval:
        return lr0
    return lr0 / (math.floor(epoch / interval) * factor)


class HybridGuidedVAE(CompilableModule):
    """Hybrid Guided VAE (spiking DECOLLE encoder, guided latent, adversarial guide).

    Args:
        sensor_size: ``[W, H, P]`` of the input frames (linked from the DataModule; 32x32 only).
        num_classes: ``K``: guided latent dims and classes of both guides (linked from the DataModule).
        n_time_steps: window length (linked; informational).
        conv_channels / pool_sizes / kernel_size / out_features: the encoder (see
            :class:`~event_lightning.nn.decolle.DecolleEncoderConfig`).
        alpha / beta: LIF decays (a number, or one per layer); the target filter uses the last layer's.
        surrogate_slope: fast-sigmoid slope.
        warmup_first_step: run step 0 once without gradient first (reference behaviour).
        dimz: latent size. classifier_hidden: width of both guide MLPs. ngf: decoder width unit.
        vae_beta: KL weight; kl_per_batch_count: divide the KL by the number of training batches
            per epoch, as the reference does. class_weight: weight ``w`` of every class term.
        learning_rates: ``[encoder, heads + decoder, excitation, inhibition]``.
        adamax_betas / adamax_eps: the encoder's Adamax.
        lr_drop_interval / lr_drop_factor: the step-wise schedule ``I`` and ``F``.
        target_scale: the x50 of the reconstruction target.
        freeze_guide_in_adversarial: False = the reference (phase C also trains the inhibition net
            toward 0.5); True = Guided-VAE proper.
        lsuv: LSUV-initialise the encoder on the first training batch.
        lsuv_rule: when LSUV stops (:data:`~event_lightning.nn.hgvae.LSUV_RULES`): ``"reference"``
            (the reference's rule: the pass whose means meet the target also rescales and ends; the
            reference configs) or ``"recheck"`` (re-measure after every rescale).
        legacy_zero_grad_steps: reproduce torch 1.10's zero-filled gradients, with which the
            reference's "step all four optimisers" after each phase also moved (by momentum) the
            parts that phase did not train, plus its extra excitation step after phase C; on in the
            configs that reproduce published numbers. False: an optimiser moves only what the
            phase trained.
    """

    def __init__(
        self,
        sensor_size: list[int] | None = None,
        num_classes: int = 10,
        n_time_steps: int | None = None,
        conv_channels: list[int] | None = None,
        pool_sizes: list[int] | None = None,
        kernel_size: int = 5,
        out_features: int = 128,
        alpha: float | list[float] = 0.99,
        beta: float | list[float] = 0.97,
        surrogate_slope: float = 10.0,
        warmup_first_step: bool = True,
        dimz: int = 100,
        classifier_hidden: int = 100,
        ngf: int = 16,
        vae_beta: float = 1.2,
        kl_per_batch_count: bool = True,
        class_weight: float = 1.0,
        learning_rates: list[float] | None = None,
        adamax_betas: list[float] | None = None,
        adamax_eps: float = 1e-4,
        lr_drop_interval: int = 60,
        lr_drop_factor: float = 1.5,
        target_scale: float = 50.0,
        freeze_guide_in_adversarial: bool = False,
        lsuv: bool = True,
        lsuv_rule: str = "recheck",
        legacy_zero_grad_steps: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__(compile=compile)
        conv_channels = [32, 64, 128] if conv_channels is None else list(conv_channels)
        pool_sizes = [2, 1, 2] if pool_sizes is None else list(pool_sizes)
        learning_rates = [3e-3, 3e-3, 3e-3, 1e-3] if learning_rates is None else list(learning_rates)
        adamax_betas = [0.0, 0.95] if adamax_betas is None else list(adamax_betas)
        sensor_size = [32, 32, 2] if sensor_size is None else list(sensor_size)
        if len(learning_rates) != 4:
            raise ValueError(
                f"model.learning_rates needs 4 values [encoder, heads+decoder, excite, inhibit]; found {learning_rates}"
            )
        if len(sensor_size) != 3:
            raise ValueError(f"model.sensor_size is [W, H, P]; found {sensor_size}")
        if lsuv_rule not in LSUV_RULES:
            raise ValueError(f"model.lsuv_rule must be one of {LSUV_RULES}; found {lsuv_rule!r}")
        self.save_hyperparameters()
        # hparams keep what the caller passed (None for defaults); the resolved lists live here.
        self.learning_rates, self.adamax_betas = learning_rates, adamax_betas
        self.automatic_optimization = False
        width, height, polarities = sensor_size
        as_decay = lambda v: tuple(v) if isinstance(v, list | tuple) else float(v)  # noqa: E731
        self.encoder_config = DecolleEncoderConfig(
            input_shape=(polarities, height, width),
            conv_channels=tuple(conv_channels),
            pool_sizes=tuple(pool_sizes),
            kernel_size=kernel_size,
            out_features=out_features,
            alpha=as_decay(alpha),
            beta=as_decay(beta),
            surrogate_slope=surrogate_slope,
            warmup_first_step=warmup_first_step,
        )
        self.num_guided = num_classes
        self.net = HybridGuidedVAENet(self.encoder_config, num_classes, dimz, classifier_hidden, ngf)
        self.inhibit = GuideClassifier(dimz - num_classes, num_classes, classifier_hidden)
        n_layers = self.encoder_config.num_layers
        self.target_alpha = self.encoder_config.decay("alpha", n_layers - 1)
        self.target_beta = self.encoder_config.decay("beta", n_layers - 1)
        # Persistent so that a resumed run does not re-initialise a trained encoder; the per-step
        # check reads the Python flag, set from the buffer once per fit (on_train_start).
        self.register_buffer("lsuv_done", torch.tensor(not lsuv))
        self._lsuv_pending = lsuv
        # validate_args=False: the argument checks read values on the host every update
        accuracy = lambda: torchmetrics.classification.MulticlassAccuracy(  # noqa: E731
            num_classes, average="micro", validate_args=False
        )
        self.train_acc, self.val_acc, self.test_acc = accuracy(), accuracy(), accuracy()
        self.val_guide_acc, self.test_guide_acc = accuracy(), accuracy()

    def compile_targets(self) -> list[nn.Module]:
        return [self.net.encoder]

    # ------------------------------------------------------------------ pieces

    def reconstruction_target(self, frames: torch.Tensor) -> torch.Tensor:
        """``x*`` ``[B, P, H, W]`` of ``frames [T, B, P, H, W]`` (counts of any dtype), at least float32.

        A filter of the data, not a network output: float32 under autocast too.
        """
        weights = reconstruction_weights(
            frames.shape[0],
            alpha=self.target_alpha,
            beta=self.target_beta,
            scale=self.hparams.target_scale,
            device=frames.device,
        )
        frames = frames.to(torch.promote_types(frames.dtype, torch.float32))
        with torch.autocast(frames.device.type, enabled=False):
            return torch.tensordot(weights.to(frames.dtype), frames, dims=([0], [0]))

    def one_hot(self, target: torch.Tensor) -> torch.Tensor:
        """``[B, K]`` float32; F.one_hot would check the labels' range on the host."""
        classes = torch.arange(self.num_guided, device=target.device)
        return (target[:, None] == classes).to(torch.float32)

    def kl_weight(self) -> float:
        """``vae_beta`` divided by the number of training batches per epoch (reference), if enabled."""
        weight = self.hparams.vae_beta
        if self.hparams.kl_per_batch_count and self._trainer is not None:
            n = self.trainer.num_training_batches
            if isinstance(n, int | float) and math.isfinite(n) and n > 0:
                weight /= n
        return weight

    def vae_losses(self, out: Any, target_image: torch.Tensor, onehot: torch.Tensor) -> dict[str, torch.Tensor]:
        recon = F.mse_loss(out.recon, target_image)
        kl = kl_divergence(out.mu, out.logvar)
        excite = self.hparams.class_weight * multilabel_soft_margin_sum(out.excite_logits, onehot)
        loss = recon + self.kl_weight() * kl + excite
        return {"loss": loss, "recon": recon, "kl": kl, "excite": excite}

    def _phase_step(
        self, loss: torch.Tensor, optimizers: list[Any], idle: list[nn.Module], skip: tuple[int, ...] = ()
    ) -> None:
        """Backward ``loss``, then step every optimiser not in ``skip``.

        ``idle`` are the modules this phase does not use. DDP's reducer waits for a gradient of
        every parameter in each backward, so they join the loss with weight zero. By default their
        zero gradients are then dropped, so that no optimiser moves them (Adam would, by momentum)
        and the step equals one without them. With ``legacy_zero_grad_steps`` gradients are zeroed
        in place instead of dropped, as ``zero_grad()`` did under torch 1.10 where the reference
        ran: a parameter that has had a gradient keeps a zero one and every step moves it by
        momentum (and advances its optimiser state); one that never had a gradient stays ``None``.
        """
        legacy = self.hparams.legacy_zero_grad_steps
        idle_parameters = [p for module in idle for p in module.parameters()]
        for opt in optimizers:
            opt.zero_grad(set_to_none=not legacy)
        never_had_gradient = [p.grad is None for p in idle_parameters]
        self.manual_backward(loss + 0.0 * sum(p.sum() for p in idle_parameters))
        for p, drop in zip(idle_parameters, never_had_gradient, strict=True):
            if drop or not legacy:
                p.grad = None
        for i, opt in enumerate(optimizers):
            if i not in skip:
                opt.step()

    def _batchnorm_statistics(self) -> list[torch.Tensor]:
        return [
            stat
            for module in self.modules()
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None
            for stat in (module.running_mean, module.running_var)
        ]

    # ------------------------------------------------------------------ Lightning hooks

    def on_train_start(self) -> None:
        self._lsuv_pending = not bool(self.lsuv_done)  # after a checkpoint restore; once per fit

    def on_train_batch_start(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        if self._lsuv_pending:
            self.initialise_encoder(batch["frames"])

    def initialise_encoder(self, frames: torch.Tensor) -> None:
        """LSUV on ``frames`` ``[T, B, C, H, W]`` (rank 0's), then every rank takes rank 0's encoder.

        A one-time initialisation that reads values on the host; the steps after it do not.
        """
        if self.global_rank == 0:
            report = lsuv_init(self.net.encoder, frames, rule=self.hparams.lsuv_rule)
            self.print(
                f"LSUV: {report.iterations} passes, converged={report.converged}, "
                f"means={[round(m, 3) for m in report.means]}, silent layers={list(report.silent)}"
            )
        _broadcast_from_rank_zero(self.net.encoder)
        self.lsuv_done.fill_(True)
        self._lsuv_pending = False

    def on_train_epoch_end(self) -> None:
        # Manual optimisation: Lightning does not step schedulers; the next epoch's LRs are set here.
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            scheduler.step()

    def _optimizer_list(self) -> list[Any]:
        optimizers = self.optimizers()
        return list(optimizers) if isinstance(optimizers, list | tuple) else [optimizers]

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor] | None:
        """The three phases; returns phase A's loss and its sampled ``z`` (for the figures), detached."""
        frames, target = batch["frames"], batch["target"]
        if frames.shape[1] <= 1:
            return None  # the guides' BatchNorm cannot train on one sample (the reference skips these too)
        opts = self._optimizer_list()
        onehot = self.one_hot(target)
        target_image = self.reconstruction_target(frames)
        k = self.num_guided
        weight = self.hparams.class_weight
        net = self.net

        # A: VAE + excitation
        out = net(frames)
        losses = self.vae_losses(out, target_image, onehot)
        self._phase_step(losses["loss"], opts, idle=[self.inhibit])

        # B: inhibition net learns to read the class from a detached z[:, K:]
        z_b = reparameterize(out.mu.detach(), out.logvar.detach())
        inhibit_loss = weight * multilabel_soft_margin_sum(self.inhibit(z_b[:, k:]), onehot)
        self._phase_step(inhibit_loss, opts, idle=[net])

        # C: adversarial, the encoder makes z[:, K:] uninformative (guide output 0.5)
        mu, logvar = net.encode(frames)
        z_c = reparameterize(mu, logvar)
        adversarial_loss = weight * multilabel_soft_margin_sum(self.inhibit(z_c[:, k:]), torch.full_like(onehot, 0.5))
        skip = (3,) if self.hparams.freeze_guide_in_adversarial else ()
        self._phase_step(adversarial_loss, opts, idle=[net.decoder, net.excite], skip=skip)
        if self.hparams.legacy_zero_grad_steps:
            opts[2].step()  # the reference steps the excitation optimiser once more (zero gradient)
        # each rank updated the guides' BatchNorm statistics with its own batch
        _average_over_ranks(self._batchnorm_statistics())

        self.train_acc(out.excite_logits.detach(), target)
        batch_size = frames.shape[1]
        log = {f"train/{name}": value.detach() for name, value in losses.items()}
        log.update({"train/inhibit": inhibit_loss.detach(), "train/adversarial": adversarial_loss.detach()})
        self.log_dict(log, on_step=True, on_epoch=True, batch_size=batch_size)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True, batch_size=batch_size)
        return {"loss": losses["loss"].detach(), "z": out.z.detach()}

    def _evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> dict[str, torch.Tensor]:
        """Logs the stage's losses and accuracies; returns ``z``, ``recon`` and the target ``x_star``."""
        frames, target = batch["frames"], batch["target"]
        out = self.net(frames)
        target_image = self.reconstruction_target(frames)
        losses = self.vae_losses(out, target_image, self.one_hot(target))
        guide_logits = self.inhibit(out.z[:, self.num_guided :])
        accuracy, guide_accuracy = getattr(self, f"{stage}_acc"), getattr(self, f"{stage}_guide_acc")
        accuracy(out.excite_logits, target)
        guide_accuracy(guide_logits, target)
        batch_size = frames.shape[1]
        # sync_dist: the epoch value is the mean over every rank's batches (synced once, at epoch end)
        logged = {f"{stage}/{name}": value for name, value in losses.items()}
        self.log_dict(logged, batch_size=batch_size, sync_dist=True)
        self.log(f"{stage}/acc", accuracy, prog_bar=True, batch_size=batch_size)
        self.log(f"{stage}/guide_acc", guide_accuracy, batch_size=batch_size)
        return {"z": out.z, "recon": out.recon, "x_star": target_image}

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        return self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        return self._evaluate(batch, "test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        """``mu``, ``logvar``, a sampled ``z`` and the excitation net's predicted class per sample."""
        out = self.net(batch["frames"])
        return {"mu": out.mu, "logvar": out.logvar, "z": out.z, "pred": out.excite_logits.argmax(dim=1)}

    def configure_optimizers(self) -> tuple[list[torch.optim.Optimizer], list[dict[str, Any]]]:
        h = self.hparams
        net = self.net
        encoder = torch.optim.Adamax(
            net.encoder.parameters(), lr=self.learning_rates[0], betas=tuple(self.adamax_betas), eps=h.adamax_eps
        )
        heads = torch.optim.Adam(
            [*net.mu_head.parameters(), *net.logvar_head.parameters(), *net.decoder.parameters()],
            lr=self.learning_rates[1],
        )
        excite = torch.optim.Adam(net.excite.parameters(), lr=self.learning_rates[2])
        inhibit = torch.optim.Adam(self.inhibit.parameters(), lr=self.learning_rates[3])
        optimizers = [encoder, heads, excite, inhibit]
        factor = lambda epoch: learning_rate_at_epoch(1.0, epoch, h.lr_drop_interval, h.lr_drop_factor)  # noqa: E731
        schedulers = [
            {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, factor), "interval": "epoch", "name": f"lr-{name}"}
            for opt, name in zip(optimizers, ("encoder", "heads_decoder", "excite", "inhibit"), strict=True)
        ]
        return optimizers, schedulers
