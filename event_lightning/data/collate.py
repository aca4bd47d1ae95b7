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
    frame_shape = tuple(batch[0][0].shape[1:])
    size, width = int(np.prod(frame_shape)), len(batch)
    padded = np.zeros((n_steps, width, size), dtype=np.int16)
    frame, column, pixel = _members_in_batch_order([frames for frames, _ in batch])
    # cell of (step, sample, pixel) in the [T, B, P*H*W] layout, built in place
    cell = frame * width
    cell += column
    cell *= size
    cell += pixel
    np.add.at(padded.reshape(-1), cell, np.int16(1))
    for b, (frames, _) in enumerate(batch):
        if not isinstance(frames, SparseFrames):
            padded[: frames.shape[0], b] = frames.reshape(frames.shape[0], -1).numpy()
    return torch.from_numpy(padded).view(n_steps, width, *frame_shape)


def _members_in_batch_order(samples: Sequence[torch.Tensor | SparseFrames]) -> tuple[np.ndarray, ...]:
    """``frame [M]``, batch column ``[M]`` and ``pixel [M]`` of the members of the sparse samples.

    The usual batch, all samples of one :class:`FrameMembers` in their order, is used as it is;
    otherwise (samples left out or mixed) the members are gathered sample by sample."""
    members = samples[0].members if isinstance(samples[0], SparseFrames) else None
    if members is not None and len(samples) == len(members) and all(
        isinstance(s, SparseFrames) and s.members is members and s.index == b for b, s in enumerate(samples)
    ):
        return members.frame, members.sample, members.pixel
    sparse = [(b, s) for b, s in enumerate(samples) if isinstance(s, SparseFrames)]
    frame = np.concatenate([s.frame for _, s in sparse])
    sizes = [len(s.frame) for _, s in sparse]
    column = np.repeat(np.array([b for b, _ in sparse], dtype=np.int64), sizes)
    return frame, column, np.concatenate([s.pixel for _, s in sparse])


def time_mask(lengths: torch.Tensor, n_steps: int) -> torch.Tensor:
    """``[T, B]`` boolean mask, True where step ``t < lengths[b]``."""
    return torch.arange(n_steps, device=lengths.device)[:, None] < lengths[None, :]
