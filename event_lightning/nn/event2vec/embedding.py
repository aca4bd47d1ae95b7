"""Event2Vec's event embeddings: an event (p, y, x) looked up as a "word" in learnable tables.

All tables reserve row 0 as a zero padding row (``nn.Embedding(padding_idx=0)``, init N(0, 1)
elsewhere): a real event with table index ``i`` reads row ``i + 1`` and every padded slot reads
row 0, so padding contributes nothing and receives no gradient.

Inputs are ``[B, L]`` int64 tensors of polarity ``p`` in ``[0, P)`` and coordinates ``y`` in
``[0, h)``, ``x`` in ``[0, w)`` (after :class:`SpatialDownsample`), plus ``valid`` bool ``[B, L]``;
outputs are tokens ``[B, L, d]``.  Neighbour embeddings add up the table rows of nearby
coordinates (clamped at the border) with learnable weights initialised to ``exp(-k^2 / 2)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "EMBEDDING_FORMS",
    "EmbeddingSpec",
    "Naive2dEmbedding",
    "NaiveEmbedding",
    "Neighbor1dNaive2dEmbedding",
    "Neighbor1dNaiveEmbedding",
    "Neighbor2dNaiveEmbedding",
    "SpatialDownsample",
    "build_embedding",
    "gaussian_neighbour_weights",
    "parse_embedding",
]

EMBEDDING_FORMS = (
    "naive",
    "naive2d",
    "neighbor1d-naive-<n>-<dilation>",
    "neighbor1d-naive2d-<n>-<dilation>",
    "neighbor2d-naive-<n>-<dilation>",
)
_NEIGHBOUR_FORM = re.compile(r"^(neighbor1d-naive|neighbor1d-naive2d|neighbor2d-naive)-(\d+)-(\d+)$")


@dataclass(frozen=True)
class EmbeddingSpec:
    """A parsed ``embed`` string: the table layout, the neighbourhood radius and dilation."""

    kind: str
    n_neighbor: int = 0
    dilation: int = 1


def parse_embedding(embed: str) -> EmbeddingSpec:
    """Parse ``naive``, ``naive2d`` or ``neighbor{1d,2d}-naive[2d]-{n}-{dilation}``
    (e.g. ``neighbor1d-naive2d-2-1``)."""
    if embed in ("naive", "naive2d"):
        return EmbeddingSpec(embed)
    match = _NEIGHBOUR_FORM.match(embed)
    if match is None or int(match.group(3)) < 1:
        raise ValueError(f"unknown embedding {embed!r}; expected one of {EMBEDDING_FORMS} (dilation >= 1)")
    return EmbeddingSpec(match.group(1), int(match.group(2)), int(match.group(3)))


def gaussian_neighbour_weights(n: int, dims: int = 1) -> torch.Tensor:
    """``exp(-|k|^2 / 2)`` for the offsets ``-n..n`` (``dims=1``: ``[2n+1]``) or the grid (``dims=2``:
    ``[(2n+1)^2]``, dy major, dx minor)."""
    k = torch.arange(-n, n + 1, dtype=torch.float32)
    if dims == 1:
        return torch.exp(-(k**2) / 2)
    return torch.exp(-(k[:, None] ** 2 + k[None, :] ** 2) / 2).flatten()


def _table(rows: int, dim: int) -> nn.Embedding:
    return nn.Embedding(rows + 1, dim, padding_idx=0)


def _rows(index: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Table rows: ``index + 1`` at real events, the zero row 0 at padding (``valid`` broadcasts)."""
    return torch.where(valid, index + 1, torch.zeros_like(index))


def _offsets(n: int, dilation: int, device: torch.device) -> torch.Tensor:
    return torch.arange(-n, n + 1, device=device) * dilation


def _weighted_lookup(table: nn.Embedding, rows: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_k weights[k] * table[rows[..., k]]``: rows ``[B, L, K]`` -> ``[B, L, d]``; row 0 adds nothing."""
    # A gather then a weighted sum: faster than F.embedding_bag(per_sample_weights) on CPU and as fast on GPU.
    # Elementwise rather than einsum (a bmm): inductor's backward of that bmm breaks with a symbolic batch size.
    return (table(rows) * weights.to(table.weight.dtype)[:, None]).sum(dim=-2)


class SpatialDownsample(nn.Module):
    """Sensor coordinates to an ``h x w`` grid: ``y' = round(y h / H)``, ``x' = round(x w / W)``, clamped.

    Coordinates are clamped to ``[0, h-1] x [0, w-1]`` also when ``h = H`` and ``w = W`` (the
    reference then skips this step), so an out-of-range event cannot index outside a table.
    """

    def __init__(self, height: int, width: int, h: int, w: int) -> None:
        super().__init__()
        if not (0 < h <= height and 0 < w <= width):
            raise ValueError(f"grid h x w = {h} x {w} must lie in [1, H] x [1, W] = [1, {height}] x [1, {width}]")
        self.height, self.width, self.h, self.w = height, width, h, w

    def extra_repr(self) -> str:
        return f"{self.height}x{self.width} -> {self.h}x{self.w}"

    def forward(self, y: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``y, x`` int64 ``[B, L]`` (padding -1) -> grid coordinates int64 ``[B, L]``."""
        if self.h < self.height:
            y = torch.round(y * (self.h / self.height)).long()
        if self.w < self.width:
            x = torch.round(x * (self.w / self.width)).long()
        return y.clamp(0, self.h - 1), x.clamp(0, self.w - 1)


class NaiveEmbedding(nn.Module):
    """One table of ``P h w + 1`` rows: event (p, y, x) is word ``p h w + y w + x``."""

    def __init__(self, polarities: int, h: int, w: int, d: int) -> None:
        super().__init__()
        self.polarities, self.h, self.w, self.d = polarities, h, w, d
        self.table = _table(polarities * h * w, d)

    def word(self, p: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The word of each event, ``p h w + y w + x`` (its table row is one more): int64 ``[B, L]``."""
        return p * (self.h * self.w) + y * self.w + x

    def forward(self, p: torch.Tensor, y: torch.Tensor, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` int64 inputs, ``valid`` bool ``[B, L]`` -> tokens ``[B, L, d]``."""
        return self.table(_rows(self.word(p, y, x), valid))


class Naive2dEmbedding(nn.Module):
    """A y table (``P h + 1`` rows, ``d_y = int(h / (h + w) d)`` wide) and an x table (``P w + 1`` rows,
    ``d - d_y`` wide), concatenated: ``[E_y[p h + y], E_x[p w + x]]``."""

    def __init__(self, polarities: int, h: int, w: int, d: int) -> None:
        super().__init__()
        self.polarities, self.h, self.w, self.d = polarities, h, w, d
        self.d_y = int(h / (h + w) * d)
        self.d_x = d - self.d_y
        if self.d_y < 1 or self.d_x < 1:
            raise ValueError(f"d = {d} is too small to split between y ({h} rows) and x ({w} columns)")
        self.table_y = _table(polarities * h, self.d_y)
        self.table_x = _table(polarities * w, self.d_x)

    def forward(self, p: torch.Tensor, y: torch.Tensor, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` int64 inputs, ``valid`` bool ``[B, L]`` -> tokens ``[B, L, d]``."""
        tokens_y = self.table_y(_rows(p * self.h + y, valid))
        tokens_x = self.table_x(_rows(p * self.w + x, valid))
        return torch.cat((tokens_y, tokens_x), dim=-1)


class Neighbor1dNaive2dEmbedding(Naive2dEmbedding):
    """The naive2d tables, each read at the ``2n+1`` clamped neighbours ``y + k dilation`` (and
    ``x + k dilation``) and summed with a learnable weight vector per axis (init ``exp(-k^2/2)``).

    The weighted neighbour sum depends on the table row alone, not on the event: it is formed once
    per row (``P h`` and ``P w`` rows, far fewer than the events of a batch), and each event then
    reads one row of each summed table instead of ``2n+1``.  Same numbers (the same products
    summed in the same order), and the same gradients up to float rounding.
    """

    def __init__(self, polarities: int, h: int, w: int, d: int, n_neighbor: int, dilation: int = 1) -> None:
        super().__init__(polarities, h, w, d)
        self.n_neighbor, self.dilation = n_neighbor, dilation
        self.weight_y = nn.Parameter(gaussian_neighbour_weights(n_neighbor))
        self.weight_x = nn.Parameter(gaussian_neighbour_weights(n_neighbor))

    def _summed_table(self, table: nn.Embedding, size: int, weights: torch.Tensor) -> torch.Tensor:
        """``[P size + 1, d']``: row ``1 + p size + c`` sums the rows of the clamped neighbours
        ``c + k dilation`` of the same polarity; row 0 sums padding rows."""
        device = weights.device
        cells = (torch.arange(size, device=device)[:, None] + _offsets(self.n_neighbor, self.dilation, device)).clamp(
            0, size - 1
        )  # [size, K]
        first_rows = torch.arange(self.polarities, device=device)[:, None, None] * size + 1
        neighbours = (first_rows + cells).flatten(0, 1)  # [P size, K]
        neighbours = torch.cat((torch.zeros_like(neighbours[:1]), neighbours))
        return _weighted_lookup(table, neighbours, weights)

    def forward(self, p: torch.Tensor, y: torch.Tensor, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` int64 inputs, ``valid`` bool ``[B, L]`` -> tokens ``[B, L, d]``."""
        table_y = self._summed_table(self.table_y, self.h, self.weight_y)
        table_x = self._summed_table(self.table_x, self.w, self.weight_x)
        tokens_y = F.embedding(_rows(p * self.h + y, valid), table_y)
        tokens_x = F.embedding(_rows(p * self.w + x, valid), table_x)
        return torch.cat((tokens_y, tokens_x), dim=-1)


class Neighbor1dNaiveEmbedding(NaiveEmbedding):
    """The naive table read at the ``2n+1`` diagonal neighbours ``(y + k dil, x + k dil)`` (y and x
    move together, each clamped), summed with one learnable weight vector (init ``exp(-k^2/2)``)."""

    def __init__(self, polarities: int, h: int, w: int, d: int, n_neighbor: int, dilation: int = 1) -> None:
        super().__init__(polarities, h, w, d)
        self.n_neighbor, self.dilation = n_neighbor, dilation
        self.weight = nn.Parameter(gaussian_neighbour_weights(n_neighbor))

    def forward(self, p: torch.Tensor, y: torch.Tensor, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` int64 inputs, ``valid`` bool ``[B, L]`` -> tokens ``[B, L, d]``."""
        k = _offsets(self.n_neighbor, self.dilation, y.device)
        ys = (y[..., None] + k).clamp(0, self.h - 1)
        xs = (x[..., None] + k).clamp(0, self.w - 1)
        index = p[..., None] * (self.h * self.w) + ys * self.w + xs
        return _weighted_lookup(self.table, _rows(index, valid[..., None]), self.weight)


class Neighbor2dNaiveEmbedding(NaiveEmbedding):
    """The naive table read on the full ``(2n+1)^2`` grid of clamped neighbours, summed with learnable
    weights (init ``exp(-(dy^2 + dx^2)/2)``).

    The reference forms the neighbour index as ``p H W + y + x`` (no ``* W`` on y), which reads
    wrong rows; here it is ``p h w + y w + x`` as for every other table.  No published run used it.
    """

    def __init__(self, polarities: int, h: int, w: int, d: int, n_neighbor: int, dilation: int = 1) -> None:
        super().__init__(polarities, h, w, d)
        self.n_neighbor, self.dilation = n_neighbor, dilation
        self.weight = nn.Parameter(gaussian_neighbour_weights(n_neighbor, dims=2))

    def forward(self, p: torch.Tensor, y: torch.Tensor, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` int64 inputs, ``valid`` bool ``[B, L]`` -> tokens ``[B, L, d]``."""
        k = _offsets(self.n_neighbor, self.dilation, y.device)
        ys = (y[..., None, None] + k[:, None]).clamp(0, self.h - 1)  # [B, L, K, 1]
        xs = (x[..., None, None] + k[None, :]).clamp(0, self.w - 1)  # [B, L, 1, K]
        index = (p[..., None, None] * (self.h * self.w) + ys * self.w + xs).flatten(-2)
        return _weighted_lookup(self.table, _rows(index, valid[..., None]), self.weight)


def build_embedding(embed: str, polarities: int, h: int, w: int, d: int) -> nn.Module:
    """The embedding module named by ``embed`` (see :data:`EMBEDDING_FORMS`) for a ``P x h x w`` grid."""
    spec = parse_embedding(embed)
    if spec.kind == "naive":
        return NaiveEmbedding(polarities, h, w, d)
    if spec.kind == "naive2d":
        return Naive2dEmbedding(polarities, h, w, d)
    neighbour_class = {
        "neighbor1d-naive": Neighbor1dNaiveEmbedding,
        "neighbor1d-naive2d": Neighbor1dNaive2dEmbedding,
        "neighbor2d-naive": Neighbor2dNaiveEmbedding,
    }[spec.kind]
    return neighbour_class(polarities, h, w, d, spec.n_neighbor, spec.dilation)
