"""The Event2Vec networks (arXiv 2504.15371 v1): event tokens into a small transformer.

Forward order, as in the reference:
spatial downsample -> coordinate noise -> coordinate offset -> time offset -> embed (p, y, x)
-> merge ``t_heads`` -> drop tokens -> add the temporal encoding -> prepend the CLS token ->
post-LN ``nn.TransformerEncoder`` with a final LayerNorm and the key-padding mask -> Linear head
on the CLS output (:class:`Event2VecNet`).  The classifier's last layer computes the CLS position
alone, the only one the head reads (``first_only`` of :class:`PostNormEncoderLayer`).

Self-supervised pre-training (:class:`MaskedEventNet`, the reference's ``self_supervised`` mode)
masks a share of the tokens instead of dropping them and predicts each masked event's word of the
``naive`` table from the encoder output at its position: logits = output . E^T over all table rows.

Under autocast (``bf16-mixed``, ``16-mixed``) everything up to the temporal encoding runs in
float32: the timestamps and the tokens they are added to keep their precision (in bf16 the 510
distinct times of a 255-event sample collapse to fewer than 300).  The transformer's matmuls then
run in the low precision, its residual stream and LayerNorms in float32.

With the paper settings (``neighbor1d-naive2d-2-1``, ``add``, 36x48 grid, d 256, 16 heads, FFN 512,
2 layers, 24 classes) the network has 1,083,370 parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from event_lightning.nn.event2vec.embedding import NaiveEmbedding, SpatialDownsample, build_embedding
from event_lightning.nn.event2vec.stages import (
    CoordinateNoise,
    DropSequence,
    MaskTokens,
    MergeTimeHeads,
    OffsetCoordinate,
    build_temporal_encoding,
    offset_time,
)

__all__ = [
    "OFFSET_COORDINATE_MODES",
    "Event2VecConfig",
    "Event2VecEmbedding",
    "Event2VecNet",
    "MaskedEventNet",
    "PostNormEncoderLayer",
    "TokenClassifier",
    "TokenEncoder",
]

OFFSET_COORDINATE_MODES = ("none", "sample", "batch")


@dataclass(frozen=True)
class Event2VecConfig:
    """Every hyperparameter of the network (defaults: the paper's ASL-DVS setting).

    Attributes:
        polarities, height, width: the sensor (ASL-DVS: 2 x 180 x 240).
        h, w: the grid coordinates are downsampled to (paper: 36 x 48).
        embed: ``naive``, ``naive2d``, ``neighbor1d-naive-n-d``, ``neighbor1d-naive2d-n-d`` or
            ``neighbor2d-naive-n-d`` (paper: ``neighbor1d-naive2d-2-1``).
        tpe: temporal encoding, ``add`` or ``t2v``.
        d_model, n_head, d_feedforward, n_layers: the transformer.
        num_classes: classifier outputs.
        dropout: transformer dropout.
        t_heads: merge the sequence into ``t_heads`` groups (1: off).
        dropout_sequence: probability of zeroing a whole token in training; with
            ``self_supervised`` the share of tokens masked (in training and evaluation).
        coordinate_noise_std: std (grid cells) of a random per-batch coordinate shift in training.
        offset_coordinate: ``none``, ``sample`` (subtract each sample's min y, x) or ``batch``
            (the reference's batch-wide min).
        offset_t: subtract each sample's first timestamp.
        classify_head_zero_init: start the head at zero.
        self_supervised: build the masked-token network (``naive`` embedding, ``t_heads`` 1,
            ``dropout_sequence`` > 0); it has no classifier head.
    """

    polarities: int = 2
    height: int = 180
    width: int = 240
    h: int = 36
    w: int = 48
    embed: str = "neighbor1d-naive2d-2-1"
    tpe: str = "add"
    d_model: int = 256
    n_head: int = 16
    d_feedforward: int = 512
    n_layers: int = 2
    num_classes: int = 24
    dropout: float = 0.0
    t_heads: int = 1
    dropout_sequence: float = 0.0
    coordinate_noise_std: float = 0.0
    offset_coordinate: str = "none"
    offset_t: bool = False
    classify_head_zero_init: bool = False
    self_supervised: bool = False

    def __post_init__(self) -> None:
        if self.offset_coordinate not in OFFSET_COORDINATE_MODES:
            raise ValueError(
                f"offset_coordinate must be one of {OFFSET_COORDINATE_MODES}, found {self.offset_coordinate!r}"
            )
        if self.d_model % self.n_head:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_head={self.n_head}")
        if self.self_supervised:
            # the targets are words of the one naive table, one per event position
            if self.embed != "naive" or self.t_heads != 1 or not 0 < self.dropout_sequence < 1:
                raise ValueError(
                    "self_supervised needs embed 'naive', t_heads 1 and the mask ratio dropout_sequence in (0, 1); "
                    f"found embed {self.embed!r}, t_heads {self.t_heads}, dropout_sequence {self.dropout_sequence}"
                )


class Event2VecEmbedding(nn.Module):
    """Events ``[B, L]`` to tokens: every step before the transformer."""

    def __init__(self, config: Event2VecConfig) -> None:
        super().__init__()
        self.config = config
        self.downsample = SpatialDownsample(config.height, config.width, config.h, config.w)
        self.coordinate_noise = CoordinateNoise(config.coordinate_noise_std, config.h, config.w)
        self.offset_coordinate = (
            OffsetCoordinate(config.offset_coordinate) if config.offset_coordinate != "none" else None
        )
        self.embed = build_embedding(config.embed, config.polarities, config.h, config.w, config.d_model)
        self.merge = MergeTimeHeads(config.t_heads) if config.t_heads > 1 else None
        self.drop_sequence = DropSequence(config.dropout_sequence)
        self.mask = MaskTokens(config.dropout_sequence) if config.self_supervised else None
        self.temporal = build_temporal_encoding(config.tpe, config.d_model)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor, p: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x, y, p`` int ``[B, L]`` (sensor pixels, padding -1), ``t`` ``[B, L]`` (normalised), ``valid``
        bool ``[B, L]`` -> tokens ``[B, L', d]`` and their validity ``[B, L']`` (``L' = L`` unless
        ``t_heads > 1``), float32 also under autocast."""
        with torch.autocast(x.device.type, enabled=False):
            return self._embed(x, y, t, p, valid)

    def masked(
        self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor, p: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Self-supervised: inputs as :meth:`forward` -> tokens ``[B, L, d]`` with a random share masked
        (float32 also under autocast), and the target ``[B, L]``: the table row (word + 1) of each
        masked real event, -1 at unmasked and padded positions."""
        if self.mask is None:
            raise RuntimeError("masked() needs an embedding built with Event2VecConfig(self_supervised=True)")
        with torch.autocast(x.device.type, enabled=False):
            p, y, x, t = self._grid(x, y, t, p, valid)
            tokens, masked = self.mask(self.embed(p, y, x, valid))
            target = torch.where(masked & valid, self.embed.word(p, y, x) + 1, -1)
            return self.temporal(t, tokens), target

    def _grid(
        self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor, p: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Events as the tables read them: ``p, y, x`` int64 on the grid, ``t`` offset if asked."""
        y, x = self.downsample(y.long(), x.long())
        y, x = self.coordinate_noise(y, x)
        if self.offset_coordinate is not None:
            y, x = self.offset_coordinate(y, x, valid)
        if self.config.offset_t:
            t = offset_time(t)
        return p.long().clamp(0, self.config.polarities - 1), y, x, t

    def _embed(
        self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor, p: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        p, y, x, t = self._grid(x, y, t, p, valid)
        tokens = self.embed(p, y, x, valid)
        if self.merge is not None:
            t = self.merge.merge_time(t, valid)
            tokens = self.merge.merge_tokens(tokens, valid)
            valid = self.merge.merge_valid(valid)
        tokens = self.drop_sequence(tokens)
        return self.temporal(t, tokens), valid


class PostNormEncoderLayer(nn.TransformerEncoderLayer):
    """``nn.TransformerEncoderLayer`` (post-LN, batch first) that always takes the composite path.

    Same parameters and state-dict keys, and the same numbers as the stock layer's training path;
    but the stock layer switches to a fused inference kernel (``_transformer_encoder_layer_fwd``)
    in eval mode without grad, which autocast does not cast and a compiled graph feeds bf16
    activations with float32 weights (a dtype error at the first validation batch).  Attention is
    :func:`F.scaled_dot_product_attention` over the packed in-projection, so the flash / memory
    efficient kernels apply on a GPU.
    """

    def forward(
        self,
        src: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        src_key_padding_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        first_only: bool = False,
    ) -> torch.Tensor:
        """``src`` ``[B, L, d]``; ``src_key_padding_mask`` ``[B, L]`` additive float, -inf at ignored keys (what
        ``nn.TransformerEncoder`` passes on) -> ``[B, L, d]``.

        ``first_only``: the output at the first position alone, ``[B, 1, d]`` (the same numbers up to
        float rounding).  Every other position then contributes only its key and value, so the
        queries, attention rows, output projection, feed-forward block and norms of ``L - 1``
        positions are skipped: a classifier reading the CLS output of its last layer needs nothing else.
        """
        if src_mask is not None or is_causal or self.norm_first or not self.self_attn.batch_first:
            raise ValueError("PostNormEncoderLayer supports post-LN, batch-first layers with a key-padding mask only")
        residual = src[:, :1] if first_only else src
        x = self.norm1(residual + self._attention(src, src_key_padding_mask, first_only))
        return self.norm2(x + self._ff_block(x))

    def _attention(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None, first_only: bool) -> torch.Tensor:
        attention = self.self_attn
        batch, length, width = x.shape
        heads = attention.num_heads
        weight, bias = attention.in_proj_weight, attention.in_proj_bias
        if first_only:  # one query; keys and values of every position (the packed weight's rows q | k | v)
            q = F.linear(x[:, :1], weight[:width], bias[:width]).view(batch, 1, heads, width // heads).transpose(1, 2)
            kv = F.linear(x, weight[width:], bias[width:])
            k, v = kv.view(batch, length, 2, heads, width // heads).permute(2, 0, 3, 1, 4).unbind(0)
        else:
            qkv = F.linear(x, weight, bias)
            q, k, v = qkv.view(batch, length, 3, heads, width // heads).permute(2, 0, 3, 1, 4).unbind(0)
        # [B, 1, 1, L]: broadcast over heads and queries; 0 and -inf are exact in bf16 and fp16.
        mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :].to(q.dtype)
        dropout = attention.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        return self.dropout1(attention.out_proj(out.transpose(1, 2).reshape(batch, q.shape[2], width)))


class TokenEncoder(nn.Module):
    """CLS token (zero init) + post-LN transformer encoder + final LayerNorm."""

    def __init__(self, config: Event2VecConfig) -> None:
        super().__init__()
        self.class_token = nn.Parameter(torch.zeros(1, 1, config.d_model))
        layer = PostNormEncoderLayer(
            d_model=config.d_model,
            nhead=config.n_head,
            dim_feedforward=config.d_feedforward,
            dropout=config.dropout,
            batch_first=True,
            norm_first=False,
        )
        self.encoder = nn.TransformerEncoder(
            layer, num_layers=config.n_layers, norm=nn.LayerNorm(config.d_model), enable_nested_tensor=False
        )

    def sequence(self, tokens: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens ``[B, L, d]``, ``valid`` bool ``[B, L]`` -> the CLS token and the tokens ``[B, 1 + L, d]``, and
        the additive key-padding mask ``[B, 1 + L]`` in their dtype (0 attended, -inf ignored), as
        ``nn.TransformerEncoder`` turns a boolean mask into one."""
        batch = tokens.shape[0]
        sequence = torch.cat((self.class_token.expand(batch, -1, -1).to(tokens.dtype), tokens), dim=1)
        # The CLS key is always attended, so a sample without events is safe.
        ignore = torch.cat((torch.zeros_like(valid[:, :1]), ~valid), dim=1)
        return sequence, torch.zeros_like(ignore, dtype=sequence.dtype).masked_fill(ignore, float("-inf"))

    def forward(self, tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """tokens ``[B, L, d]``, ``valid`` bool ``[B, L]`` -> encoded ``[B, 1 + L, d]``, the CLS output first."""
        sequence, mask = self.sequence(tokens, valid)
        return self.encoder(sequence, src_key_padding_mask=mask)

    def forward_first(self, tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """As :meth:`forward`, the CLS output alone ``[B, d]``: the last layer computes only that
        position (``first_only`` of :class:`PostNormEncoderLayer`)."""
        sequence, mask = self.sequence(tokens, valid)
        *earlier, last = self.encoder.layers
        for layer in earlier:
            sequence = layer(sequence, src_key_padding_mask=mask)
        return self.encoder.norm(last(sequence, src_key_padding_mask=mask, first_only=True))[:, 0]


class TokenClassifier(TokenEncoder):
    """:class:`TokenEncoder` + Linear head on the CLS output."""

    def __init__(self, config: Event2VecConfig) -> None:
        super().__init__(config)
        self.head = nn.Linear(config.d_model, config.num_classes)
        if config.classify_head_zero_init:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """tokens ``[B, L, d]``, ``valid`` bool ``[B, L]`` -> logits ``[B, num_classes]``."""
        return self.head(self.forward_first(tokens, valid))


class Event2VecNet(nn.Module):
    """The whole classifier: :class:`Event2VecEmbedding` then :class:`TokenClassifier`."""

    def __init__(self, config: Event2VecConfig | None = None) -> None:
        super().__init__()
        self.config = config or Event2VecConfig()
        self.embedding = Event2VecEmbedding(self.config)
        self.classifier = TokenClassifier(self.config)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor, p: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """Padded events ``[B, L]`` (see :class:`Event2VecEmbedding`) -> logits ``[B, num_classes]``."""
        tokens, valid = self.embedding(x, y, t, p, valid)
        return self.classifier(tokens, valid)


class MaskedEventNet(nn.Module):
    """Self-supervised pre-training: predict the ``naive`` word of every masked event.

    The same :class:`Event2VecEmbedding` and encoder as :class:`Event2VecNet` under the same names
    (``embedding``, ``classifier``), so a pre-trained checkpoint loads into the classifier key for
    key; there is no head.
    """

    def __init__(self, config: Event2VecConfig) -> None:
        super().__init__()
        if not config.self_supervised:
            raise ValueError("MaskedEventNet needs Event2VecConfig(self_supervised=True)")
        self.config = config
        self.embedding = Event2VecEmbedding(config)
        self.classifier = TokenEncoder(config)

    @property
    def word_embedding(self) -> NaiveEmbedding:
        """The word table the logits are taken against."""
        return self.embedding.embed

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor, p: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded events ``[B, L]`` (see :class:`Event2VecEmbedding`) -> logits ``[B, L, P h w + 1]`` over
        the table rows (row 0 is padding) and the target rows ``[B, L]`` (-1: not scored)."""
        tokens, target = self.embedding.masked(x, y, t, p, valid)
        encoded = self.classifier(tokens, valid)[:, 1:]
        return encoded @ self.word_embedding.table.weight.T, target
