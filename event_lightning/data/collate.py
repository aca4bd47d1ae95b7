"""Batching variable-length frame sequences."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def pad_time_collate(batch: Sequence[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zero-pad frame sequences along time and stack them time-first.

    Args:
        batch: ``(frames [T_i, ...], label)`` pairs of one dtype (int16 counts from ``to_frame``).

    Returns:
        ``frames [T_max, B, ...]`` in the samples' dtype, ``lengths [B]`` int64 (valid steps per
        sample) and ``labels [B]`` int64. Counts stay integers so the host copies, pins and sends
        half the bytes of float32 (a quarter of them for uint8 input); models cast on the device.
    """
    if not batch:
        raise ValueError("pad_time_collate: empty batch")
    dtypes = {frames.dtype for frames, _ in batch}
    if len(dtypes) != 1:
        raise ValueError(
            f"pad_time_collate: the frames of one batch must share a dtype, found {sorted(map(str, dtypes))}"
        )
    lengths = torch.tensor([frames.shape[0] for frames, _ in batch], dtype=torch.int64)
    first = batch[0][0]
    # empty, not zeros: every element is written once below (a zero pass would touch the pages twice)
    padded = first.new_empty((int(lengths.max()), len(batch), *first.shape[1:]))
    for b, (frames, _) in enumerate(batch):
        padded[: frames.shape[0], b] = frames
        padded[frames.shape[0] :, b] = 0
    labels = torch.tensor([int(label) for _, label in batch], dtype=torch.int64)
    return padded, lengths, labels


def time_mask(lengths: torch.Tensor, n_steps: int) -> torch.Tensor:
    """``[T, B]`` boolean mask, True where step ``t < lengths[b]``."""
    return torch.arange(n_steps, device=lengths.device)[:, None] < lengths[None, :]
