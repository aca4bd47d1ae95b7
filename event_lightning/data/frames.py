"""Event-classification datasets whose samples are framed with ``to_frame`` on access."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from event_lightning.events.core import EventFormatError, SensorSize, to_event_array, validate
from event_lightning.events.represent import FrameSlicing, to_frame

EventSource = Callable[[int], tuple[np.ndarray, int, str]]
"""``index -> (events, label, origin)``: where a dataset gets one raw sample."""


class EventFramesDataset(Dataset):
    """Samples as ``(frames [T, P, H, W] int16 tensor, label)``.

    Every sample is converted to the event contract, validated against ``sensor_size`` (errors
    name the sample's file) and framed with ``frame_spec`` (tonic ToFrame semantics).
    ``transform`` (events -> events, e.g. an augmentation) runs between validation and framing.
    """

    def __init__(
        self,
        source: EventSource,
        length: int,
        sensor_size: SensorSize,
        frame_spec: FrameSlicing,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.source, self.length = source, length
        self.sensor_size, self.frame_spec, self.transform = sensor_size, frame_spec, transform

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        raw, label, origin = self.source(index)
        events = validate(to_event_array(raw, origin=origin), self.sensor_size, origin=origin)
        if len(events) == 0:
            raise EventFormatError(f"{origin}: the recording holds no events; nothing to frame")
        if self.transform is not None:
            events = self.transform(events)
        frames = to_frame(events, self.sensor_size, **asdict(self.frame_spec))
        return torch.from_numpy(frames), int(label)


def file_source(files: Sequence[tuple[Path, int]], reader: Callable[[Path], np.ndarray]) -> EventSource:
    """An :data:`EventSource` over ``(path, label)`` pairs read with ``reader``."""

    def load(index: int) -> tuple[np.ndarray, int, str]:
        path, label = files[index]
        return reader(path), label, str(path)

    return load
