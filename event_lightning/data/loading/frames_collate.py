"""Batching variable-length frame sequences."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from event_lightning.data.loading.frames_dataset import SparseFrames

UINT8_MAX = 255


def pad_time_collate(
    batch: Sequence[tuple[torch.Tensor | SparseFrames, int]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zero-pad frame sequences along time and stack them time-first.

    Args:
        batch: ``(frames [T_i, ...], label)`` pairs of one dtype (int16 counts from ``to_frame``);
            ``frames`` may also be :class:`SparseFrames` (int16), counted straight into the batch.

    Returns:
        ``frames [T_max, B, ...]``, ``lengths [B]`` int64 (valid steps per sample) and ``labels [B]``
        int64. Integer counts come as **uint8 when every count of the batch lies in [0, 255]**,
        else in the samples' dtype (int16 counts, whose wrap-around can make them negative); the
        values are the same either way. Counts stay integers so the host copies, pins and sends a
        quarter (uint8) or half (int16) of the bytes of float32; models cast on the device.
        Float frames keep their dtype.
    """
    if not batch:
        raise ValueError("pad_time_collate: empty batch")
    dtypes = {frames.dtype for frames, _ in batch}
    if len(dtypes) != 1:
        raise ValueError(
            f"pad_time_collate: the frames of one batch must share a dtype, found {sorted(map(str, dtypes))}"
        )
    shapes = {tuple(frames.shape[1:]) for frames, _ in batch}
    if len(shapes) != 1:
        raise ValueError(f"pad_time_collate: the frames of one batch must share a frame shape, found {sorted(shapes)}")
    lengths = torch.tensor([frames.shape[0] for frames, _ in batch], dtype=torch.int64)
    labels = torch.tensor([int(label) for _, label in batch], dtype=torch.int64)
    n_steps = int(lengths.max())
    samples = [frames for frames, _ in batch]
    if any(isinstance(frames, SparseFrames) for frames in samples):
        return _count_into_batch(samples, n_steps), lengths, labels
    return _narrow_counts(_pad_dense(samples, n_steps)), lengths, labels


def _pad_dense(samples: Sequence[torch.Tensor], n_steps: int) -> torch.Tensor:
    """``[n_steps, B, ...]`` of dense samples, zero after each sample's own length."""
    first = samples[0]
    # empty, not zeros: every element is written once below (a zero pass would touch the pages twice)
    padded = first.new_empty((n_steps, len(samples), *first.shape[1:]))
    for b, frames in enumerate(samples):
        padded[: frames.shape[0], b] = frames
        padded[frames.shape[0] :, b] = 0
    return padded


def _narrow_counts(frames: torch.Tensor) -> torch.Tensor:
    """int16 counts that all fit uint8 as uint8 (the same values); anything else unchanged."""
    if frames.dtype != torch.int16 or frames.numel() == 0:
        return frames
    low, high = torch.aminmax(frames)
    return frames.to(torch.uint8) if int(low) >= 0 and int(high) <= UINT8_MAX else frames


def _count_into_batch(samples: Sequence[torch.Tensor | SparseFrames], n_steps: int) -> torch.Tensor:
    """``[n_steps, B, P, H, W]`` counts: one ``np.add.at`` for all :class:`SparseFrames` samples
    (int16 wrap-around as in ``to_frame``), dense samples copied in.

    Counted straight into uint8 when every sample is sparse and no frame counts more than 255
    events (so no count can exceed 255); otherwise into int16, narrowed afterwards if it fits."""
    frame_shape = tuple(samples[0].shape[1:])
    size, width = int(np.prod(frame_shape)), len(samples)
    all_sparse = all(isinstance(frames, SparseFrames) for frames in samples)
    fits_uint8 = all_sparse and max(frames.cells.max_frame_events for frames in samples) <= UINT8_MAX
    dtype = np.uint8 if fits_uint8 else np.int16
    padded = np.zeros((n_steps, width, size), dtype=dtype)
    np.add.at(padded.reshape(-1), _cells_in_batch_order(samples, width, size), dtype(1))
    for b, frames in enumerate(samples):
        if not isinstance(frames, SparseFrames):
            padded[: frames.shape[0], b] = frames.reshape(frames.shape[0], -1).numpy()
    counts = torch.from_numpy(padded).view(n_steps, width, *frame_shape)
    return counts if fits_uint8 else _narrow_counts(counts)


def _cells_in_batch_order(samples: Sequence[torch.Tensor | SparseFrames], width: int, size: int) -> np.ndarray:
    """Flat ``[T, width, size]`` index of every counted event of the sparse samples.

    The usual batch, every sample of one :class:`~event_lightning.data.loading.frames_dataset.FrameCells` in its
    order, is counted as it is; otherwise (samples left out or mixed) the members are gathered
    sample by sample."""
    cells = samples[0].cells if isinstance(samples[0], SparseFrames) else None
    if cells is not None and len(samples) == len(cells) and all(
        isinstance(s, SparseFrames) and s.cells is cells and s.index == b for b, s in enumerate(samples)
    ):
        return cells.cell
    parts = [np.zeros(0, dtype=np.int64)]
    for b, frames in enumerate(samples):
        if isinstance(frames, SparseFrames):
            frame, pixel = frames.cells.members(frames.index)
            parts.append((frame * width + b) * size + pixel)
    return np.concatenate(parts)


def time_mask(lengths: torch.Tensor, n_steps: int) -> torch.Tensor:
    """``[T, B]`` boolean mask, True where step ``t < lengths[b]``."""
    return torch.arange(n_steps, device=lengths.device)[:, None] < lengths[None, :]
