"""Batching variable-length frame sequences."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from event_lightning.data.frames import SparseFrames


def pad_time_collate(
    batch: Sequence[tuple[torch.Tensor | SparseFrames, int]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zero-pad frame sequences along time and stack them time-first.

    Args:
        batch: ``(frames [T_i, ...], label)`` pairs of one dtype (int16 counts from ``to_frame``);
            ``frames`` may also be :class:`SparseFrames` (int16), counted straight into the batch.

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
    shapes = {tuple(frames.shape[1:]) for frames, _ in batch}
    if len(shapes) != 1:
        raise ValueError(f"pad_time_collate: the frames of one batch must share a frame shape, found {sorted(shapes)}")
    lengths = torch.tensor([frames.shape[0] for frames, _ in batch], dtype=torch.int64)
    labels = torch.tensor([int(label) for _, label in batch], dtype=torch.int64)
    if any(isinstance(frames, SparseFrames) for frames, _ in batch):
        return _count_into_batch(batch, int(lengths.max())), lengths, labels
    first = batch[0][0]
    # empty, not zeros: every element is written once below (a zero pass would touch the pages twice)
    padded = first.new_empty((int(lengths.max()), len(batch), *first.shape[1:]))
    for b, (frames, _) in enumerate(batch):
        padded[: frames.shape[0], b] = frames
        padded[frames.shape[0] :, b] = 0
    return padded, lengths, labels


def _count_into_batch(batch: Sequence[tuple[torch.Tensor | SparseFrames, int]], n_steps: int) -> torch.Tensor:
    """int16 ``[n_steps, B, P, H, W]``: one ``np.add.at`` for all :class:`SparseFrames` samples
    (int16 wrap-around as in ``to_frame``), dense samples copied in."""
    samples = [frames for frames, _ in batch]
    frame_shape = tuple(samples[0].shape[1:])
    size, width = int(np.prod(frame_shape)), len(samples)
    padded = np.zeros((n_steps, width, size), dtype=np.int16)
    np.add.at(padded.reshape(-1), _cells_in_batch_order(samples, width, size), np.int16(1))
    for b, frames in enumerate(samples):
        if not isinstance(frames, SparseFrames):
            padded[: frames.shape[0], b] = frames.reshape(frames.shape[0], -1).numpy()
    return torch.from_numpy(padded).view(n_steps, width, *frame_shape)


def _cells_in_batch_order(samples: Sequence[torch.Tensor | SparseFrames], width: int, size: int) -> np.ndarray:
    """Flat ``[T, width, size]`` index of every counted event of the sparse samples.

    The usual batch, every sample of one :class:`FrameCells` in its order, is counted as it is;
    otherwise (samples left out or mixed) the members are gathered sample by sample."""
    cells = samples[0].cells if isinstance(samples[0], SparseFrames) else None
    if cells is not None and len(samples) == len(cells) and all(
        isinstance(s, SparseFrames) and s.cells is cells and s.index == b for b, s in enumerate(samples)
    ):
        return cells.cell
    parts = []
    for b, frames in enumerate(samples):
        if isinstance(frames, SparseFrames):
            frame, pixel = frames.cells.members(frames.index)
            parts.append((frame * width + b) * size + pixel)
    return np.concatenate(parts)


def time_mask(lengths: torch.Tensor, n_steps: int) -> torch.Tensor:
    """``[T, B]`` boolean mask, True where step ``t < lengths[b]``."""
    return torch.arange(n_steps, device=lengths.device)[:, None] < lengths[None, :]
