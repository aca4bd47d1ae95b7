"""Event2Vec classification (and its self-supervised pre-training) as a LightningModule: loss,
optimiser, schedule, metrics, logging, and starting from a pre-trained checkpoint.

Training: cross-entropy with ``label_smoothing`` (validation and test without), fused AdamW (lr
1e-3, weight decay 0 in the paper; with decay, LayerNorm / Embedding weights, biases and the CLS
token are exempt), cosine annealing stepped once per epoch over ``trainer.max_epochs``.  Logs
``train/loss`` (step and epoch), ``train/acc``, ``val/loss``, ``val/acc``, ``test/loss``,
``test/acc`` and the samples per second of each stage.  Evaluation losses are averaged over all
processes (``sync_dist``), like the accuracies.

``self_supervised: true`` (the reference's BERT-style mode) trains :class:`MaskedEventNet`
instead: a ``dropout_sequence`` share of the tokens is masked, in training and evaluation, and
each masked event's ``naive`` table row is predicted from the encoder output at its position
(logits = output . E^T); the loss is the cross-entropy over masked real events
(``ignore_index`` -1) and ``{stage}/acc`` the share of them predicted exactly.  A classifier then
starts from such a run with ``pretrained`` (everything but the head) or ``embed_pretrained`` (the
embedding only), read at ``setup`` (a resumed run's own checkpoint replaces them afterwards);
``learn_head_only`` trains the head alone.

Mixed precision: ``16-mixed`` as the reference trained (Lightning's GradScaler), or
``bf16-mixed``; the network keeps timestamps, tokens and the residual stream in float32 (see
:mod:`event_lightning.nn.event2vec.network`).  With ``compile: true`` the network is compiled with
the batch size symbolic and the sequence length fixed (the loader pads to ``sample_number``), so
one graph serves training and one evaluation, whatever the batch size.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchmetrics
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from event_lightning.data.loading.event_samplers import EventBatch
from event_lightning.metrics.masked_tokens import MaskedTokenAccuracy
from event_lightning.models.base import CompilableModule, run_compiled
from event_lightning.models.event2vec_pretrained import (
    HEAD_PREFIX,
    load_pretrained_embedding,
    load_pretrained_network,
    network_state,
)
from event_lightning.models.lr_schedules import LR_SCHEDULES, check_lr_schedule, with_lr_schedule
from event_lightning.nn.event2vec import Event2VecConfig, Event2VecNet, MaskedEventNet

__all__ = ["LR_SCHEDULES", "Event2VecClassifier"]

log = logging.getLogger(__name__)

_NO_DECAY_MODULES = (nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.Embedding)


class Event2VecClassifier(CompilableModule):
    """Event2Vec on padded event batches (:class:`EventBatch`).

    Args:
        num_classes: classes (linked from the DataModule; ASL-DVS: 24).
        sensor_size: ``[W, H, P]`` (linked from the DataModule; ASL-DVS: ``[240, 180, 2]``).
        h, w: the grid events are downsampled to (paper: 36 x 48).
        embed: ``naive``, ``naive2d``, ``neighbor1d-naive-n-d``, ``neighbor1d-naive2d-n-d``,
            ``neighbor2d-naive-n-d`` (paper: ``neighbor1d-naive2d-2-1``).
        tpe: temporal encoding ``add`` (paper) or ``t2v``.
        d_model, n_head, d_feedforward, n_layers: the transformer (paper: 256, 16, 512, 2).
        t_heads, dropout_sequence, coordinate_noise_std, offset_coordinate, offset_t,
            classify_head_zero_init, dropout: see :class:`Event2VecConfig` (paper: off, except
            ``offset_t``).
        self_supervised: pre-train by masked-token prediction (``embed: naive``; the mask ratio is
            ``dropout_sequence``).
        embed_pretrained: checkpoint whose embedding tables this model starts from.
        pretrained: checkpoint whose whole network but the head this model starts from (read after
            ``embed_pretrained``, as in the reference).
        learn_head_only: train only the classifier head.
        lr, weight_decay: AdamW.
        lr_schedule: ``cosine`` (per epoch, over ``max_epochs``) or ``none``.
        label_smoothing: of the training loss only.
        compile: compile the network in place (``--model.compile true``).
    """

    def __init__(
        self,
        num_classes: int = 24,
        sensor_size: list[int] | None = None,
        h: int = 36,
        w: int = 48,
        embed: str = "neighbor1d-naive2d-2-1",
        tpe: str = "add",
        d_model: int = 256,
        n_head: int = 16,
        d_feedforward: int = 512,
        n_layers: int = 2,
        t_heads: int = 1,
        dropout: float = 0.0,
        dropout_sequence: float = 0.0,
        coordinate_noise_std: float = 0.0,
        offset_coordinate: str = "none",
        offset_t: bool = False,
        classify_head_zero_init: bool = False,
        self_supervised: bool = False,
        embed_pretrained: str | None = None,
        pretrained: str | None = None,
        learn_head_only: bool = False,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        lr_schedule: str = "cosine",
        label_smoothing: float = 0.0,
        compile: bool = False,
    ) -> None:
        super().__init__(compile=compile)
        self.save_hyperparameters()
        check_lr_schedule(lr_schedule)
        width, height, polarities = sensor_size if sensor_size is not None else (240, 180, 2)
        self.config = Event2VecConfig(
            polarities=polarities,
            height=height,
            width=width,
            h=h,
            w=w,
            embed=embed,
            tpe=tpe,
            d_model=d_model,
            n_head=n_head,
            d_feedforward=d_feedforward,
            n_layers=n_layers,
            num_classes=num_classes,
            dropout=dropout,
            t_heads=t_heads,
            dropout_sequence=dropout_sequence,
            coordinate_noise_std=coordinate_noise_std,
            offset_coordinate=offset_coordinate,
            offset_t=offset_t,
            classify_head_zero_init=classify_head_zero_init,
            self_supervised=self_supervised,
        )
        self.net = MaskedEventNet(self.config) if self_supervised else Event2VecNet(self.config)
        if learn_head_only:
            if self_supervised:
                raise ValueError("learn_head_only trains the classifier head; self_supervised has none")
            for name, parameter in self.net.named_parameters():
                parameter.requires_grad_(name.startswith(HEAD_PREFIX))
        self.train_acc, self.val_acc, self.test_acc = (
            MaskedTokenAccuracy() if self_supervised else MulticlassAccuracy(num_classes, average="micro")
            for _ in range(3)
        )
        self._stage_clock: dict[str, tuple[float, int]] = {}
        self._pretrained_loaded = False

    def setup(self, stage: str) -> None:
        # Once per module: a later trainer.validate/test must not put the pre-trained weights back.
        if not self._pretrained_loaded:
            self._load_pretrained(stage)
            self._pretrained_loaded = True

    def _load_pretrained(self, stage: str) -> None:
        for setting in ("embed_pretrained", "pretrained"):
            path = self.hparams[setting]
            if path is None:
                continue
            if not Path(path).is_file() and stage != "fit":
                # validate/test restore the whole model from its own checkpoint afterwards
                log.warning("%s %s not found; relying on the checkpoint given to %s", setting, path, stage)
                continue
            state = network_state(path)
            load = load_pretrained_embedding if setting == "embed_pretrained" else load_pretrained_network
            load(self.net, state, source=f"model.{setting} {path}")

    def forward(self, batch: EventBatch) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[B, num_classes]`` of a padded batch (``t`` normalised, as the DataModule hands it over);
        self-supervised: logits ``[B, L, P h w + 1]`` over the table rows and their targets ``[B, L]``."""
        inputs = (batch.x, batch.y, batch.t, batch.p, batch.valid_mask)
        return run_compiled(self.net, *inputs) if self._compiled else self.net(*inputs)

    def _scored(self, batch: EventBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[N, C]`` and targets ``[N]`` (-1: not scored): the batch's labels, or the masked events."""
        if self.hparams.self_supervised:
            logits, target = self(batch)
            return logits.flatten(0, 1), target.flatten()
        return self(batch), batch.label

    def _count(self, stage: str, batch: EventBatch) -> None:
        start, seen = self._stage_clock.get(stage, (time.perf_counter(), 0))
        self._stage_clock[stage] = (start, seen + len(batch.label))

    def _log_speed(self, stage: str) -> None:
        start, seen = self._stage_clock.pop(stage, (None, 0))
        if start is not None and seen:
            self.log(f"{stage}/samples_per_s", seen / max(time.perf_counter() - start, 1e-9))

    def training_step(self, batch: EventBatch, batch_idx: int) -> torch.Tensor:
        self._count("train", batch)
        logits, target = self._scored(batch)
        loss = F.cross_entropy(logits, target, ignore_index=-1, label_smoothing=self.hparams.label_smoothing)
        self.train_acc(logits.detach(), target)
        size = len(batch.label)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True, batch_size=size)
        return loss

    def _evaluate(self, stage: str, batch: EventBatch, metric: torchmetrics.Metric) -> torch.Tensor:
        self._count(stage, batch)
        logits, target = self._scored(batch)
        loss = F.cross_entropy(logits, target, ignore_index=-1)
        metric(logits, target)
        size = len(batch.label)
        self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=True, batch_size=size, sync_dist=True)
        self.log(f"{stage}/acc", metric, on_epoch=True, prog_bar=True, batch_size=size)
        return loss

    def validation_step(self, batch: EventBatch, batch_idx: int) -> torch.Tensor:
        return self._evaluate("val", batch, self.val_acc)

    def test_step(self, batch: EventBatch, batch_idx: int) -> torch.Tensor:
        return self._evaluate("test", batch, self.test_acc)

    def predict_step(self, batch: EventBatch, batch_idx: int) -> dict[str, torch.Tensor]:
        """Class probabilities ``[B, C]``, predictions and labels ``[B]``; self-supervised: the predicted
        and the target table rows ``[B, L]`` (target -1: not masked or padding)."""
        if self.hparams.self_supervised:
            logits, target = self(batch)
            return {"prediction": logits.argmax(-1), "target": target}
        probabilities = self(batch).softmax(dim=-1)
        return {"probabilities": probabilities, "prediction": probabilities.argmax(-1), "label": batch.label}

    def on_train_epoch_end(self) -> None:
        self._log_speed("train")

    def on_validation_epoch_end(self) -> None:
        self._log_speed("val")

    def on_test_epoch_end(self) -> None:
        self._log_speed("test")

    def parameter_groups(self) -> list[dict[str, Any]]:
        """AdamW groups: all parameters, or with weight decay a decayed and an exempt group."""
        decay = self.hparams.weight_decay
        if decay <= 0:
            return [{"params": [p for p in self.parameters() if p.requires_grad], "weight_decay": 0.0}]
        exempt: dict[int, nn.Parameter] = {}
        for module in self.modules():
            for name, parameter in module.named_parameters(recurse=False):
                if isinstance(module, _NO_DECAY_MODULES) or name == "bias" or name == "class_token":
                    exempt[id(parameter)] = parameter
        decayed = [p for p in self.parameters() if p.requires_grad and id(p) not in exempt]
        return [
            {"params": decayed, "weight_decay": decay},
            {"params": [p for p in exempt.values() if p.requires_grad], "weight_decay": 0.0},
        ]

    def configure_optimizers(self) -> Any:
        # The fused kernel (one pass per tensor) exists for CPU and CUDA parameters; elsewhere the default.
        fused = all(p.device.type in ("cpu", "cuda") for p in self.parameters()) or None
        optimizer = torch.optim.AdamW(self.parameter_groups(), lr=self.hparams.lr, fused=fused)
        return with_lr_schedule(optimizer, self.hparams.lr_schedule, self)
