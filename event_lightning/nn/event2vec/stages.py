"""The optional steps around Event2Vec's embedding: temporal encodings, coordinate noise and
offsets, merging the sequence into ``t_heads`` groups, dropping whole tokens, masking tokens for
self-supervised training.

All tensors are batch-first: coordinates and times ``[B, L]``, ``valid`` bool ``[B, L]``, tokens
``[B, L, d]``.  Every step is out-of-place (the reference edits batch tensors in place).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "TEMPORAL_ENCODINGS",
    "AdditiveTime",
    "CoordinateNoise",
    "DropSequence",
    "MaskTokens",
    "MergeTimeHeads",
    "OffsetCoordinate",
    "Time2Vec",
    "build_temporal_encoding",
    "offset_time",
]

TEMPORAL_ENCODINGS = ("add", "t2v")


class AdditiveTime(nn.Module):
    """``tpe='add'``: the normalised timestamp of each event added to every channel of its token."""

    def forward(self, t: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """``t`` ``[B, L]``, tokens ``[B, L, d]`` -> ``tokens + t[..., None]``."""
        return tokens + t[..., None].to(tokens.dtype)


class Time2Vec(nn.Module):
    """``tpe='t2v'`` (Kazemi et al. 2019): ``v = Linear(1 -> d)(t)``, channel 0 linear, channels
    1..d-1 through ``sin``; added to the tokens (``2 d`` parameters)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.linear = nn.Linear(1, d)

    def forward(self, t: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """``t`` ``[B, L]``, tokens ``[B, L, d]`` -> tokens plus the Time2Vec code of t."""
        v = self.linear(t[..., None].to(self.linear.weight.dtype))
        code = torch.cat((v[..., :1], torch.sin(v[..., 1:])), dim=-1)
        return tokens + code.to(tokens.dtype)


def build_temporal_encoding(tpe: str, d: int) -> nn.Module:
    """``add`` or ``t2v``."""
    if tpe == "add":
        return AdditiveTime()
    if tpe == "t2v":
        return Time2Vec(d)
    raise ValueError(f"unknown temporal encoding tpe={tpe!r}; choose one of {TEMPORAL_ENCODINGS}")


def offset_time(t: torch.Tensor) -> torch.Tensor:
    """``offset_t``: each sample's times minus its first time, ``t - t[:, :1]``."""
    return t - t[:, :1]


class CoordinateNoise(nn.Module):
    """``coordinate_noise_std > 0``: in training, one rounded Gaussian shift ``(dy, dx)`` of std
    ``std`` grid cells moves the whole batch; coordinates are clamped to the grid.  Identity in eval."""

    def __init__(self, std: float, h: int, w: int) -> None:
        super().__init__()
        self.std, self.h, self.w = std, h, w

    def forward(self, y: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``y, x`` int64 ``[B, L]`` -> shifted and clamped ``y, x``."""
        if not self.training or self.std <= 0:
            return y, x
        shift = torch.round(torch.randn(2, device=y.device) * self.std).long()
        return (y + shift[0]).clamp(0, self.h - 1), (x + shift[1]).clamp(0, self.w - 1)


class OffsetCoordinate(nn.Module):
    """``offset_coordinate``: subtract the smallest y and x of the real events.

    ``mode="sample"`` takes the minimum per sample; ``"batch"`` over the whole batch, as the
    reference does (which makes a sample's input depend on its batch mates).
    """

    def __init__(self, mode: str) -> None:
        super().__init__()
        if mode not in ("sample", "batch"):
            raise ValueError(f"offset_coordinate mode must be 'sample' or 'batch', found {mode!r}")
        self.mode = mode

    def extra_repr(self) -> str:
        return f"mode={self.mode}"

    def _minimum(self, values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        big = torch.iinfo(values.dtype).max
        masked = torch.where(valid, values, torch.full_like(values, big))
        low = masked.amin(dim=1, keepdim=True) if self.mode == "sample" else masked.amin().reshape(1, 1)
        return torch.where(low == big, torch.zeros_like(low), low)  # rows without events stay put

    def forward(self, y: torch.Tensor, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``y, x`` int64 ``[B, L]``, ``valid`` bool ``[B, L]`` -> offset ``y, x`` (padding may go negative;
        it is masked at the lookup)."""
        return y - self._minimum(y, valid), x - self._minimum(x, valid)


class MergeTimeHeads(nn.Module):
    """``t_heads > 1``: cut the sequence into ``t_heads`` consecutive parts and average them slot by
    slot, counting real events only; the sequence gets ``t_heads`` times shorter.

    Slot ``j`` of the result averages positions ``j, j + L', j + 2 L', ...`` (``L' = L / t_heads``);
    it is valid when at least one of them is.  The sequence is first padded to a multiple of
    ``t_heads``; an all-padding slot becomes zeros (the reference divides by zero there).
    """

    def __init__(self, t_heads: int) -> None:
        super().__init__()
        if t_heads < 1:
            raise ValueError(f"t_heads must be >= 1, found {t_heads}")
        self.t_heads = t_heads

    def extra_repr(self) -> str:
        return f"t_heads={self.t_heads}"

    def _split(self, values: torch.Tensor) -> torch.Tensor:
        pad = (-values.shape[1]) % self.t_heads
        if pad:
            values = torch.cat((values, values.new_zeros(values.shape[0], pad, *values.shape[2:])), dim=1)
        return values.reshape(values.shape[0], self.t_heads, -1, *values.shape[2:])

    def merge_valid(self, valid: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` -> ``[B, ceil(L / t_heads)]``: slots holding at least one real event."""
        return self._split(valid).any(dim=1)

    def merge_time(self, t: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Mean time per slot: ``t`` ``[B, L]`` -> ``[B, ceil(L / t_heads)]`` float."""
        weight = self._split(valid).to(torch.float32)
        total = (self._split(t.to(torch.float32)) * weight).sum(dim=1)
        return total / weight.sum(dim=1).clamp_min(1)

    def merge_tokens(self, tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Mean token per slot: ``[B, L, d]`` -> ``[B, ceil(L / t_heads), d]``."""
        weight = self._split(valid).to(tokens.dtype)[..., None]
        return (self._split(tokens) * weight).sum(dim=1) / weight.sum(dim=1).clamp_min(1)


class DropSequence(nn.Module):
    """``dropout_sequence > 0``: in training, zero whole tokens with probability ``p`` (no rescaling,
    as in the reference).  Identity in eval."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout_sequence must be in [0, 1), found {p}")
        self.p = p

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens ``[B, L, d]`` -> tokens with some rows zeroed."""
        if not self.training or self.p == 0:
            return tokens
        keep = torch.rand(tokens.shape[0], tokens.shape[1], 1, device=tokens.device) > self.p
        return tokens * keep.to(tokens.dtype)


class MaskTokens(nn.Module):
    """Self-supervised masking (BERT-style): zero whole tokens with probability ``p`` and say which.

    Active in training and evaluation alike, as in the reference, so that the evaluation loss is
    the same task.  A masked token is zeroed before the temporal encoding, so it still carries
    its event's time.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0 < p < 1:
            raise ValueError(f"the mask ratio (dropout_sequence) must be in (0, 1), found {p}")
        self.p = p

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens ``[B, L, d]`` -> tokens with the masked rows zeroed, and ``masked`` bool ``[B, L]``."""
        masked = torch.rand(tokens.shape[0], tokens.shape[1], device=tokens.device) < self.p
        return tokens * (~masked)[..., None].to(tokens.dtype), masked
