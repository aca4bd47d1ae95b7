"""Event-classification datasets whose samples are framed with ``to_frame`` on access."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from event_lightning.data.frame_cache import FrameCache
from event_lightning.events.core import EVENT_DTYPE, EventFormatError, SensorSize, to_event_array, validate
from event_lightning.events.represent import FrameSlicing, frame_events

FRAMES_CODE_VERSION = "1"
"""Bump when framing changes what a cached sample holds (see :class:`FrameCache`)."""

EventSource = Callable[[int], tuple[np.ndarray, int, str]]
"""``index -> (events, label, origin)``: where a dataset gets one raw sample."""


class EventFramesDataset(Dataset):
    """Samples as ``(frames [T, P, H, W] int16 tensor, label)``.

    Every sample is converted to the event contract, validated against ``sensor_size`` (errors
    name the sample's file) and framed with ``frame_spec`` (tonic ToFrame semantics).
    ``transform`` (events -> events, e.g. an augmentation) runs between validation and framing.
    ``labels`` (optional, per sample) lets a cached sample be served without reading its file.
    With ``cache`` (only without a ``transform``: a random augmentation must not be frozen into
    a cache) each sample is framed once and read back from its ``.npy`` afterwards.
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
    ) -> None:
        if cache is not None and transform is not None:
            raise ValueError(
                "EventFramesDataset: a frame cache would freeze the random transform; use one or the other"
            )
        self.source, self.length = source, length
        self.sensor_size, self.frame_spec, self.transform = sensor_size, frame_spec, transform
        self.cache, self.labels = cache, labels

    def __len__(self) -> int:
        return self.length

    def _frames(self, raw: np.ndarray, origin: str) -> np.ndarray:
        # Readers return fresh EVENT_DTYPE arrays: no converting copy; validated once, here.
        events = raw.reshape(-1) if raw.dtype == EVENT_DTYPE else to_event_array(raw, origin=origin)
        validate(events, self.sensor_size, origin=origin)
        if len(events) == 0:
            raise EventFormatError(f"{origin}: the recording holds no events; nothing to frame")
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

    def _raw(self, index: int) -> tuple[np.ndarray, str]:
        raw, _, origin = self.source(index)
        return raw, origin


def file_source(files: Sequence[tuple[Path, int]], reader: Callable[[Path], np.ndarray]) -> EventSource:
    """An :data:`EventSource` over ``(path, label)`` pairs read with ``reader``."""

    def load(index: int) -> tuple[np.ndarray, int, str]:
        path, label = files[index]
        return reader(path), label, str(path)

    return load
