"""Event-classification datasets whose samples are framed with ``to_frame`` on access."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from event_lightning.data.loading.frame_cache import FrameCache
from event_lightning.data.loading.sample_transforms import SampleTransform
from event_lightning.events.core import EVENT_DTYPE, EventFormatError, SensorSize, to_event_array, validate
from event_lightning.events.represent.frames import frame_events
from event_lightning.events.represent.frames_batched import batch_frame_cells
from event_lightning.events.represent.pixels import pixel_index
from event_lightning.events.represent.slicing import FrameSlicing

FRAMES_CODE_VERSION = "1"
"""Bump when framing changes what a cached sample holds (see :class:`FrameCache`)."""

EventSource = Callable[[int], tuple[np.ndarray, int, str]]
"""``index -> (events, label, origin)``: where a dataset gets one raw sample."""


class EventBatch(NamedTuple):
    """The validated, non-empty recordings of a batch, concatenated: ``t [N]`` (µs, int64),
    ``pixel [N]`` (flat ``(p, y, x)`` index, int), ``counts [B]`` events per recording, ``labels [B]``."""

    t: np.ndarray
    pixel: np.ndarray
    counts: np.ndarray
    labels: list[int]


EventBatchSource = Callable[[Sequence[int]], EventBatch | None]
"""``indices -> EventBatch``, or None when a sample needs the per-sample reader (which then names
the file and what is wrong): a reader that decodes and validates a whole batch in one pass."""


class FrameCells:
    """A batch's int16 frames, not yet densified: where each counted event adds 1.

    ``cell [M]`` (int64) indexes the flat time-first batch ``[T_max, B, P*H*W]`` (``T_max =
    n_frames.max()``); ``n_frames [B]`` is each sample's ``T``; ``max_frame_events`` the most
    events one frame counts (no count exceeds it). Built by
    :func:`~event_lightning.events.represent.batch_frame_cells`.
    """

    def __init__(
        self, cell: np.ndarray, n_frames: np.ndarray, max_frame_events: int, frame_shape: tuple[int, int, int]
    ) -> None:
        self.cell, self.n_frames, self.frame_shape = cell, n_frames, tuple(frame_shape)
        self.max_frame_events = max_frame_events
        self.frame_size = int(np.prod(self.frame_shape))

    def __len__(self) -> int:
        return len(self.n_frames)

    def samples(self) -> list[SparseFrames]:
        """One :class:`SparseFrames` per sample."""
        return [SparseFrames(self, b) for b in range(len(self))]

    def members(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``frame [M_b]`` and flat ``(p, y, x)`` ``pixel [M_b]`` of every counted event of sample ``index``."""
        row, pixel = np.divmod(self.cell, self.frame_size)
        frame, column = np.divmod(row, len(self))
        mine = column == index
        return frame[mine], pixel[mine]


class SparseFrames:
    """Sample ``index`` of a :class:`FrameCells`: its int16 ``(T, P, H, W)`` frames not yet densified.

    :func:`~event_lightning.data.loading.frames_collate.pad_time_collate` counts a whole :class:`FrameCells`
    straight into the padded batch in one pass; :meth:`dense` gives what
    :func:`~event_lightning.events.represent.frame_events` gives for the sample.
    """

    dtype = torch.int16  # the dtype of the dense frames (int16 counts, wrapping like tonic's)

    def __init__(self, cells: FrameCells, index: int) -> None:
        self.cells, self.index = cells, index

    @property
    def shape(self) -> tuple[int, ...]:
        """``(T, P, H, W)`` of the dense frames."""
        return (int(self.cells.n_frames[self.index]), *self.cells.frame_shape)

    def dense(self) -> torch.Tensor:
        """int16 ``[T, P, H, W]`` counts."""
        frame, pixel = self.cells.members(self.index)
        out = np.zeros(self.shape[0] * self.cells.frame_size, dtype=np.int16)
        np.add.at(out, frame * self.cells.frame_size + pixel, np.int16(1))
        return torch.from_numpy(out.reshape(self.shape))


class EventFramesDataset(Dataset):
    """Samples as ``(frames [T, P, H, W] int16 tensor, label)``.

    Every sample is converted to the event contract, validated against ``sensor_size`` (errors
    name the sample's file) and framed with ``frame_spec`` (tonic ToFrame semantics).
    ``transform`` (a :class:`~event_lightning.data.loading.sample_transforms.SampleTransform`: the
    user's ``data.train_transform`` / ``eval_transform``, ``(events, index, origin) -> events``,
    validated again) runs between validation and framing.
    ``labels`` (optional, per sample) lets a cached sample be served without reading its file.
    With ``cache`` (only without a ``transform``: a random augmentation must not be frozen into
    a cache) each sample is framed once and read back from its ``.npy`` afterwards.

    A DataLoader fetches whole batches through :meth:`__getitems__`: without a transform or a
    cache the samples come as :class:`SparseFrames` framed in one vectorised pass over the batch
    (``batch_source``, when given, also reads and validates the batch in one pass), and
    :func:`~event_lightning.data.loading.frames_collate.pad_time_collate` counts them into the padded batch, so
    no per-sample dense frames are built. The batch holds the same values either way.
    """

    def __init__(
        self,
        source: EventSource,
        length: int,
        sensor_size: SensorSize,
        frame_spec: FrameSlicing,
        transform: SampleTransform | None = None,
        cache: FrameCache | None = None,
        labels: Sequence[int] | None = None,
        batch_source: EventBatchSource | None = None,
    ) -> None:
        if cache is not None and transform is not None:
            raise ValueError(
                "EventFramesDataset: a frame cache would freeze the random transform; use one or the other"
            )
        self.source, self.length = source, length
        self.sensor_size, self.frame_spec, self.transform = sensor_size, frame_spec, transform
        self.cache, self.labels, self.batch_source = cache, labels, batch_source

    def __len__(self) -> int:
        return self.length

    def _events(self, raw: np.ndarray, origin: str) -> np.ndarray:
        """``raw`` as validated, non-empty EVENT_DTYPE events (errors name ``origin``)."""
        # Readers return fresh EVENT_DTYPE arrays: no converting copy; validated once, here.
        events = raw.reshape(-1) if raw.dtype == EVENT_DTYPE else to_event_array(raw, origin=origin)
        validate(events, self.sensor_size, origin=origin)
        if len(events) == 0:
            raise EventFormatError(f"{origin}: the recording holds no events; nothing to frame")
        return events

    def _frames(self, raw: np.ndarray, origin: str, index: int) -> np.ndarray:
        events = self._events(raw, origin)
        if self.transform is not None:  # validates what the user's transforms return
            events = self.transform(events, index, origin)
        return frame_events(events, self.sensor_size, self.frame_spec, checked=True)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self.cache is not None and self.labels is not None and index in self.cache:
            # a cache hit with known labels never opens the recording
            cached = self.cache.load(index, lambda: self._frames(*self._raw(index), index))
            return torch.from_numpy(np.array(cached, dtype=np.int16)), int(self.labels[index])
        raw, label, origin = self.source(index)
        if self.cache is None:
            return torch.from_numpy(self._frames(raw, origin, index)), int(label)
        cached = self.cache.load(index, lambda: self._frames(raw, origin, index))
        return torch.from_numpy(np.array(cached, dtype=np.int16)), int(label)

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[torch.Tensor | SparseFrames, int]]:
        """The samples of one batch, in order: :class:`SparseFrames` framed in one pass (dense
        tensors from :meth:`__getitem__` with a transform or a cache). Errors are those of
        :meth:`__getitem__`: a batch the ``batch_source`` cannot take is read sample by sample."""
        if self.transform is not None or self.cache is not None:
            return [self[index] for index in indices]
        batch = self.batch_source(indices) if self.batch_source is not None else None
        if batch is None:
            batch = self._read_one_by_one(indices)
        frame_shape = self.sensor_size.frame_shape
        cell, n_frames, max_frame_events = batch_frame_cells(
            batch.t, batch.pixel, batch.counts, self.frame_spec, self.sensor_size.num_features
        )
        cells = FrameCells(cell, n_frames, max_frame_events, frame_shape)
        return list(zip(cells.samples(), batch.labels, strict=True))

    def _read_one_by_one(self, indices: Sequence[int]) -> EventBatch:
        """An :class:`EventBatch` from ``source``, each sample validated as in :meth:`__getitem__`."""
        times, pixels, counts, labels = [], [], [], []
        for index in indices:
            raw, label, origin = self.source(index)
            events = self._events(raw, origin)
            times.append(events["t"])
            pixels.append(pixel_index(events, self.sensor_size, origin=origin, checked=True))
            counts.append(len(events))
            labels.append(int(label))
        return EventBatch(np.concatenate(times), np.concatenate(pixels), np.array(counts, dtype=np.int64), labels)

    def _raw(self, index: int) -> tuple[np.ndarray, str]:
        raw, _, origin = self.source(index)
        return raw, origin


def file_source(files: Sequence[tuple[Path, int]], reader: Callable[[Path], np.ndarray]) -> EventSource:
    """An :data:`EventSource` over ``(path, label)`` pairs read with ``reader``."""

    def load(index: int) -> tuple[np.ndarray, int, str]:
        path, label = files[index]
        return reader(path), label, str(path)

    return load
