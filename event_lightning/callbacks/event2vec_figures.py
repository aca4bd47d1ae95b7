"""Event2Vec's token and attention maps for TensorBoard: where the events are, and where the class token looks.

:func:`cls_attention` reruns the network on a few samples (eagerly, in eval mode) and returns,
per event token, the share of the class token's attention in the last encoder layer (mean over
heads), with the token's cell on the embedding grid (``h x w``). :func:`attention_maps` sums both
over the grid. :class:`Event2VecAttentionLogger` draws them for the first validation batch: per
sample, the events per cell beside the class token's attention per cell, named by label and
prediction. In a config::

    trainer:
      callbacks:
        - class_path: event_lightning.callbacks.event2vec_figures.Event2VecAttentionLogger
          init_args: {every_n_epochs: 1, n_samples: 3}
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from torch import Tensor

from event_lightning.callbacks.figure_budget import DEFAULT_SHARE
from event_lightning.callbacks.tensorboard_figures.classes import sample_label
from event_lightning.callbacks.tensorboard_figures.periodic import _PeriodicFigureCallback
from event_lightning.data.loading.event_samplers import EventBatch
from event_lightning.nn.event2vec import Event2VecNet
from event_lightning.viz.events import plot_image_rows

__all__ = ["Event2VecAttentionLogger", "attention_maps", "cls_attention", "plot_attention_maps"]


@torch.no_grad()
def cls_attention(net: Event2VecNet, batch: EventBatch) -> dict[str, Tensor]:
    """The class token's attention over the event tokens of a padded batch.

    Args:
        net: an Event2Vec network with ``t_heads == 1`` (one token per event); put it in eval mode.
        batch: events ``[B, L]`` as the network reads them (``t`` normalised).

    Returns:
        ``attention [B, L]`` (the share of the class token's last-layer attention on each event,
        mean over heads; 0 at padding; each row sums to 1 minus the share on the class token
        itself), ``row``/``column [B, L]`` (the token's cell on the ``h x w`` grid, 0 at padding),
        ``valid [B, L]`` and ``logits [B, num_classes]`` (the network's output on the batch).
    """
    if net.embedding.merge is not None:
        raise ValueError("cls_attention: needs one token per event (model.t_heads 1)")
    tokens, valid = net.embedding(batch.x, batch.y, batch.t, batch.p, batch.valid_mask)
    classifier = net.classifier
    sequence, bias = classifier.sequence(tokens, valid)
    *earlier, last = classifier.encoder.layers
    for layer in earlier:
        sequence = layer(sequence, src_key_padding_mask=bias)
    attention = last.self_attn
    batch_size, length, width = sequence.shape
    heads = attention.num_heads
    qkv = torch.nn.functional.linear(sequence, attention.in_proj_weight, attention.in_proj_bias)
    q, k, _ = qkv.view(batch_size, length, 3, heads, width // heads).permute(2, 0, 3, 1, 4).unbind(0)
    scores = (q[:, :, :1] @ k.transpose(-1, -2)) / (width // heads) ** 0.5 + bias[:, None, None, :]
    weights = scores.softmax(dim=-1)[:, :, 0].mean(dim=1)  # [B, 1 + L], the class token's query
    encoded = classifier.encoder.norm(last(sequence, src_key_padding_mask=bias, first_only=True))
    row, column = net.embedding.downsample(batch.y.long().clamp(min=0), batch.x.long().clamp(min=0))
    return {
        "attention": weights[:, 1:].masked_fill(~valid, 0.0),
        "row": row.masked_fill(~valid, 0),
        "column": column.masked_fill(~valid, 0),
        "valid": valid,
        "logits": classifier.head(encoded[:, 0]),
    }


def attention_maps(found: dict[str, Tensor], height: int, width: int) -> tuple[Tensor, Tensor]:
    """Events per grid cell and the class token's attention per cell, both ``[B, height, width]``."""
    cell = found["row"] * width + found["column"]
    counts = torch.zeros(len(cell), height * width, device=cell.device)
    counts.scatter_add_(1, cell, found["valid"].float())
    attention = torch.zeros(len(cell), height * width, device=cell.device)
    attention.scatter_add_(1, cell, found["attention"].float())
    return counts.view(-1, height, width), attention.view(-1, height, width)


def plot_attention_maps(
    counts: Any, attention: Any, row_labels: list[str], *, title: str | None = None, panel_inches: float = 2.0
) -> Figure:
    """Per sample (a row): events per grid cell (white to black) and the class token's attention per
    cell (magma), each panel on its own scale, drawn as one mosaic (:func:`~event_lightning.viz.plot_image_rows`)."""
    counts, attention = np.asarray(counts, dtype=np.float64), np.asarray(attention, dtype=np.float64)

    def coloured(maps: np.ndarray, cmap: str) -> np.ndarray:
        peak = maps.reshape(len(maps), -1).max(axis=1)[:, None, None]
        scaled = np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)
        return colormaps[cmap](scaled)[..., :3]

    rows = np.stack([coloured(counts, "Greys"), coloured(attention, "magma")], axis=1)  # [B, 2, h, w, 3]
    labels = [["events per cell", "class-token attention"]] * len(rows)
    return plot_image_rows(
        list(rows), row_labels=row_labels, panel_labels=labels, panel_inches=panel_inches, title=title
    )


def _first(batch: EventBatch, n: int) -> EventBatch:
    return EventBatch(*(field[:n] for field in batch))


class Event2VecAttentionLogger(_PeriodicFigureCallback):
    """Log Event2Vec's token and attention maps of the first validation batch (``add_image`` under ``tag``).

    At the end of a logging validation epoch the network reruns on ``n_samples`` samples of the
    kept batch, eagerly and in eval mode (a compiled network is not recompiled for it).

    Args:
        every_n_epochs: log on validation epochs ``0, n, 2n, ...``.
        n_samples: samples drawn, one row each.
        tag: TensorBoard image tag.
        time_budget: share of the training wall time all the run's figures may take (default 0.05;
            null: every candidate epoch); see :mod:`event_lightning.callbacks.figure_budget`.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        n_samples: int = 3,
        tag: str = "val/attention",
        time_budget: float | None = DEFAULT_SHARE,
    ) -> None:
        super().__init__(every_n_epochs, "Event2VecAttentionLogger", time_budget)
        if n_samples < 1:
            raise ValueError(f"Event2VecAttentionLogger: n_samples must be >= 1, found {n_samples}")
        self.n_samples, self.tag = n_samples, tag

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        net = getattr(pl_module, "net", None)
        if not isinstance(net, Event2VecNet):
            raise ValueError(
                f"Event2VecAttentionLogger: draws Event2VecClassifier's network, found {type(pl_module).__name__}"
            )
        if net.embedding.merge is not None:
            raise ValueError("Event2VecAttentionLogger: needs one token per event; set model.t_heads 1")

    def _log_first_batch(self, writer: Any, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any) -> None:
        net: Event2VecNet = pl_module.net
        was_training = net.training
        net.eval()
        samples = _first(batch, self.n_samples)
        # Eager even when compiled: a figure per epoch is not worth graphs of its own.
        with torch.compiler.set_stance("force_eager"):
            found = cls_attention(net, samples)
        net.train(was_training)
        config = net.config
        counts, attention = attention_maps(found, config.h, config.w)
        labels = samples.label.cpu().tolist()
        predictions = found["logits"].argmax(-1).cpu().tolist()
        names = getattr(getattr(trainer, "datamodule", None), "class_names", None)
        rows = [sample_label(i, a, b, names) for i, (a, b) in enumerate(zip(labels, predictions, strict=True))]
        fig = plot_attention_maps(
            counts.cpu().numpy(), attention.cpu().numpy(), rows, title=f"epoch {trainer.current_epoch}"
        )
        self._log(writer, self.tag, fig, trainer.global_step)
