"""Method 5: norse's recurrent LIF classifier (the POKER-DVS tutorial) as a LightningModule."""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F
from torchmetrics.classification import MulticlassAccuracy

from event_lightning.data.loading.frames_collate import time_mask
from event_lightning.events.core import SensorSize
from event_lightning.models.base import CompilableModule
from event_lightning.models.lr_schedules import check_lr_schedule, with_lr_schedule
from event_lightning.nn.lif import LIFClassifierNet, LIFParameters, LIParameters
from event_lightning.nn.lif.layers import CUDAGRAPH_MODES


class LIFClassifier(CompilableModule):
    """Flattened frames -> recurrent LIF (hidden) -> Linear -> leaky integrator; max over time.

    The decoder takes the maximum readout voltage over the valid (unpadded) steps of each sample,
    then log-softmax and NLL: cross-entropy on max-over-time voltages, as in the tutorial. The
    tutorial's max also runs over the zero padding of shorter samples; ``mask_padding=False``
    reproduces that.

    Args:
        sensor_size: ``[W, H, P]`` (linked from the DataModule); input features ``W * H * P``.
        num_classes: linked from the DataModule.
        hidden_features: recurrent LIF neurons.
        tau_syn_inv, tau_mem_inv, v_th, alpha: LIF constants (1/s; ``alpha`` of the SuperSpike
            surrogate, ``1 / (alpha |v - v_th| + 1)^2``).
        readout_tau_syn_inv, readout_tau_mem_inv: leaky-integrator readout constants (1/s).
        dt: integration step in seconds (one frame per step).
        lr: Adam learning rate.
        lr_schedule: ``none`` (the tutorial's constant rate) or ``cosine`` (per epoch from ``lr`` to 0
            over ``max_epochs``, as :class:`~event_lightning.models.event2vec.Event2VecClassifier`).
        compile: compile the recurrent layer's step cells (once each, whatever the sequence length).
        compile_mode: ``torch.compile`` mode; the CUDA-graph modes (``reduce-overhead``,
            ``max-autotune``) do not fit cells run once per time step and are refused.

    Mixed precision (``--trainer.precision bf16-mixed``) leaves this network in float32: bf16
    weights flip ~3 % of the spikes over 500 steps (see ``nn.lif.layers.full_precision``).
    """

    def __init__(
        self,
        sensor_size: list[int],
        num_classes: int,
        hidden_features: int = 100,
        tau_syn_inv: float = 100.0,
        tau_mem_inv: float = 100.0,
        v_th: float = 0.3,
        alpha: float = 100.0,
        readout_tau_syn_inv: float = 200.0,
        readout_tau_mem_inv: float = 100.0,
        dt: float = 1e-3,
        lr: float = 2e-3,
        lr_schedule: str = "none",
        mask_padding: bool = True,
        compile: bool = False,
        compile_mode: str = "default",
    ) -> None:
        super().__init__(compile=compile, compile_mode=compile_mode)
        if compile_mode in CUDAGRAPH_MODES:
            raise ValueError(
                f"model.compile_mode {compile_mode!r} captures CUDA graphs, which the LIF cells (run once per "
                "time step) cannot use; use 'default' or 'max-autotune-no-cudagraphs'"
            )
        if num_classes < 2:
            raise ValueError(f"model.num_classes must be >= 2, found {num_classes}")
        check_lr_schedule(lr_schedule)
        for name, value in (("hidden_features", hidden_features), ("dt", dt), ("lr", lr)):
            if value <= 0:
                raise ValueError(f"model.{name} must be > 0, found {value}")
        self.save_hyperparameters()
        sensor = SensorSize.coerce(sensor_size)
        self.net = LIFClassifierNet(
            input_features=sensor.num_features,
            hidden_features=hidden_features,
            num_classes=num_classes,
            lif=LIFParameters(tau_syn_inv=tau_syn_inv, tau_mem_inv=tau_mem_inv, v_th=v_th, alpha=alpha),
            readout=LIParameters(tau_syn_inv=readout_tau_syn_inv, tau_mem_inv=readout_tau_mem_inv),
            dt=dt,
        )
        # one metric object per stage ("train" cannot be a ModuleDict key: nn.Module.train exists);
        # without argument validation, which reads the labels on the host at every update
        self.train_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.val_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.test_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)

    def compile_targets(self) -> list[torch.nn.Module]:
        return self.net.compile_targets()

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``frames [T, B, P, H, W]`` -> class log-probabilities ``[B, num_classes]``."""
        voltages = self.net(frames)
        if lengths is not None and self.hparams.mask_padding:
            valid = time_mask(lengths, voltages.shape[0])[..., None]
            voltages = voltages.masked_fill(~valid, float("-inf"))
        return F.log_softmax(voltages.max(dim=0).values, dim=-1)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        frames, lengths, labels = batch
        log_probs = self(frames, lengths)
        loss = F.nll_loss(log_probs, labels)
        accuracy = getattr(self, f"{stage}_acc")
        accuracy(log_probs, labels)
        on_step = stage == "train"
        # Under DDP, evaluation losses are averaged over ranks (an all-reduce per step is not worth it
        # for the training loss); torchmetrics syncs the accuracy itself.
        self.log(
            f"{stage}/loss",
            loss,
            on_step=on_step,
            on_epoch=True,
            prog_bar=True,
            batch_size=len(labels),
            sync_dist=not on_step,
        )
        self.log(f"{stage}/acc", accuracy, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(labels))
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "test")

    def predict_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        frames, lengths, labels = batch
        probabilities = self(frames, lengths).exp()
        return {"probabilities": probabilities, "prediction": probabilities.argmax(-1), "label": labels}

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return with_lr_schedule(optimizer, self.hparams.lr_schedule, self)
