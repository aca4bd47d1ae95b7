"""Batching variable-length frame sequences."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def pad_time_collate(batch: Sequence[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zero-pad frame sequences along time and stack them time-first.

    Args:
        batch: ``(frames [T_i, ...], label)`` pairs; frames may be integer counts.

    Returns:
        ``frames [T_max, B, ...]`` float32 (cast explicitly: tonic's PadTensors keeps int16 when
        all lengths agree), ``lengths [B]`` int64 (valid steps per sample) and ``labels [B]`` int64.
    """
    if not batch:
        raise ValueError("pad_time_collate: empty batch")
    lengths = torch.tensor([frames.shape[0] for frames, _ in batch], dtype=torch.int64)
    first = batch[0][0]
    padded = first.new_zeros((int(lengths.max()), len(batch), *first.shape[1:]), dtype=torch.float32)
    for b, (frames, _) in enumerate(batch):
        padded[: frames.shape[0], b] = frames
    labels = torch.tensor([int(label) for _, label in batch], dtype=torch.int64)
    return padded, lengths, labels


def time_mask(lengths: torch.Tensor, n_steps: int) -> torch.Tensor:
    """``[T, B]`` boolean mask, True where step ``t < lengths[b]``."""
    return torch.arange(n_steps, device=lengths.device)[:, None] < lengths[None, :]
