"""Event-classification datasets whose samples are framed with ``to_frame`` on access."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from event_lightning.events.core import EventFormatError, SensorSize, to_event_array, validate
from event_lightning.events.represent import to_frame


@dataclass(frozen=True)
class FrameSpec:
    """How a stream becomes frames: exactly one of the four slicing modes (tonic ToFrame semantics).

    ``time_window`` and ``overlap`` (time modes) are in µs, ``event_count`` in events,
    ``overlap`` of the bin modes a fraction in [0, 1).
    """

    time_window: float | None = None
    event_count: int | None = None
    n_time_bins: int | None = None
    n_event_bins: int | None = None
    overlap: float = 0
    include_incomplete: bool = False

    def __post_init__(self) -> None:
        modes = {k: v for k, v in asdict(self).items() if k in _MODES and v is not None}
        if len(modes) != 1:
            raise ValueError(
                f"set exactly one of data.time_window, data.event_count, data.n_time_bins, data.n_event_bins; "
                f"found {modes or 'none'}"
            )
        ((key, value),) = modes.items()
        if value <= 0:
            raise ValueError(f"data.{key} must be > 0, found {value}")
        if self.overlap < 0:
            raise ValueError(f"data.overlap must be >= 0, found {self.overlap}")
        if key in ("time_window", "event_count") and self.overlap >= value:
            raise ValueError(f"data.overlap ({self.overlap}) must be smaller than data.{key} ({value})")
        if key in ("n_time_bins", "n_event_bins") and self.overlap >= 1:
            raise ValueError(f"data.overlap is a fraction in [0, 1) with data.{key}; found {self.overlap}")

    def apply(self, events: np.ndarray, sensor_size: SensorSize) -> np.ndarray:
        """``events`` -> ``(T, P, H, W)`` int16 counts."""
        return to_frame(events, sensor_size, **asdict(self))


_MODES = ("time_window", "event_count", "n_time_bins", "n_event_bins")

EventSource = Callable[[int], tuple[np.ndarray, int, str]]
"""``index -> (events, label, origin)``: where a dataset gets one raw sample."""


class EventFramesDataset(Dataset):
    """Samples as ``(frames [T, P, H, W] int16 tensor, label)``.

    Every sample is converted to the event contract, validated against ``sensor_size`` (errors
    name the sample's file) and framed with ``frame_spec``. ``transform`` (events -> events, e.g.
    an augmentation) runs between validation and framing.
    """

    def __init__(
        self,
        source: EventSource,
        length: int,
        sensor_size: SensorSize,
        frame_spec: FrameSpec,
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
        return torch.from_numpy(self.frame_spec.apply(events, self.sensor_size)), int(label)


def file_source(files: Sequence[tuple[Path, int]], reader: Callable[[Path], np.ndarray]) -> EventSource:
    """An :data:`EventSource` over ``(path, label)`` pairs read with ``reader``."""

    def load(index: int) -> tuple[np.ndarray, int, str]:
        path, label = files[index]
        return reader(path), label, str(path)

    return load
