"""Event-classification datasets whose samples are framed with ``to_frame`` on access."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from event_lightning.data.frame_cache import FrameCache
from event_lightning.events.core import EVENT_DTYPE, EventFormatError, SensorSize, to_event_array, validate
from event_lightning.events.represent import FrameSlicing, frame_events, frame_members, pixel_index

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


class FrameMembers:
    """The int16 ``(T, P, H, W)`` frames of a batch's samples as the events they count.

    ``sample [M]``, ``frame [M]`` and ``pixel [M]`` (flat ``(p, y, x)`` index; int64, grouped by
    sample in order) name the cell every counted event adds 1 to (an event in several overlapping
    frames is listed once per frame); ``n_frames [B]`` is each sample's ``T``. See
    :func:`~event_lightning.events.represent.frame_members`.
    """

    def __init__(
        self,
        sample: np.ndarray,
        frame: np.ndarray,
        pixel: np.ndarray,
        n_frames: np.ndarray,
        frame_shape: tuple[int, int, int],
    ) -> None:
        self.sample, self.frame, self.pixel = sample, frame, pixel
        self.n_frames, self.frame_shape = n_frames, tuple(frame_shape)
        # member range [bounds[b], bounds[b + 1]) of sample b (members are grouped by sample)
        self.bounds = np.searchsorted(sample, np.arange(len(n_frames) + 1))

    def __len__(self) -> int:
        return len(self.n_frames)

    def samples(self) -> list[SparseFrames]:
        """One :class:`SparseFrames` view per sample."""
        return [SparseFrames(self, b) for b in range(len(self))]


class SparseFrames:
    """Sample ``index`` of a :class:`FrameMembers`: its int16 ``(T, P, H, W)`` frames not yet densified.

    :func:`~event_lightning.data.collate.pad_time_collate` counts these straight into the padded
    batch (a whole :class:`FrameMembers` in one pass); :meth:`dense` gives what
    :func:`~event_lightning.events.represent.frame_events` gives for the sample.
    """

    dtype = torch.int16  # the dtype of the dense frames (int16 counts, wrapping like tonic's)

    def __init__(self, members: FrameMembers, index: int) -> None:
        self.members, self.index = members, index

    @property
    def shape(self) -> tuple[int, ...]:
        """``(T, P, H, W)`` of the dense frames."""
        return (int(self.members.n_frames[self.index]), *self.members.frame_shape)

    @property
    def frame(self) -> np.ndarray:
        """``[M_b]`` frame of every counted event of this sample."""
        return self.members.frame[self.members.bounds[self.index] : self.members.bounds[self.index + 1]]

    @property
    def pixel(self) -> np.ndarray:
        """``[M_b]`` flat ``(p, y, x)`` index of every counted event of this sample."""
        return self.members.pixel[self.members.bounds[self.index] : self.members.bounds[self.index + 1]]

    def dense(self) -> torch.Tensor:
        """int16 ``[T, P, H, W]`` counts."""
        shape = self.shape
        size = int(np.prod(shape[1:]))
        out = np.zeros(shape[0] * size, dtype=np.int16)
        np.add.at(out, self.frame * size + self.pixel, np.int16(1))
        return torch.from_numpy(out.reshape(shape))


class EventFramesDataset(Dataset):
    """Samples as ``(frames [T, P, H, W] int16 tensor, label)``.

    Every sample is converted to the event contract, validated against ``sensor_size`` (errors
    name the sample's file) and framed with ``frame_spec`` (tonic ToFrame semantics).
    ``transform`` (events -> events, e.g. an augmentation) runs between validation and framing.
    ``labels`` (optional, per sample) lets a cached sample be served without reading its file.
    With ``cache`` (only without a ``transform``: a random augmentation must not be frozen into
    a cache) each sample is framed once and read back from its ``.npy`` afterwards.

    A DataLoader fetches whole batches through :meth:`__getitems__`: without a transform or a
    cache the samples come as :class:`SparseFrames` framed in one vectorised pass over the batch
    (``batch_source``, when given, also reads and validates the batch in one pass), and
    :func:`~event_lightning.data.collate.pad_time_collate` counts them into the padded batch, so
    no per-sample dense frames are built. The batch holds the same values either way.
    """

    def __init__(
        self,
        source: EventSource,
        length: int,
        sensor_size: SensorSize,
        frame_spec: FrameSlicing,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
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

    def _frames(self, raw: np.ndarray, origin: str) -> np.ndarray:
        events = self._events(raw, origin)
        if self.transform is not None:  # its output is checked again by frame_events
            return frame_events(self.transform(events), self.sensor_size, self.frame_spec)
        return frame_events(events, self.sensor_size, self.frame_spec, checked=True)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self.cache is not None and self.labels is not None and index in self.cache:
            # a cache hit with known labels never opens the recording
            cached = self.cache.load(index, lambda: self._frames(*self._raw(index)))
            return torch.from_numpy(np.array(cached, dtype=np.int16)), int(self.labels[index])
        raw, label, origin = self.source(index)
        if self.cache is None:
            return torch.from_numpy(self._frames(raw, origin)), int(label)
        cached = self.cache.load(index, lambda: self._frames(raw, origin))
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
        members = FrameMembers(
            *frame_members(batch.t, batch.pixel, batch.counts, self.frame_spec), self.sensor_size.frame_shape
        )
        return list(zip(members.samples(), batch.labels, strict=True))

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
