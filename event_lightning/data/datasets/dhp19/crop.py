"""The part of the DHP19 sensor the pose networks see: a 256x256 crop, optionally sum-pooled.

Frames are the counts of the crop rows 2:258, columns 34:290 of the 346x260 sensor, optionally
sum-pooled by ``downsample`` (a CPU-friendly option; the reference uses 1). Events are mapped onto
the (pooled) crop before counting, with the events outside the crop kept in a spare column that is
dropped afterwards, so time bins that depend on the first/last event match the full-sensor ones. Labels are
joint coordinates, never dense maps: ``(x, y)`` pixels of that grid, float (the model truncates
them, as the reference's int cast does), NaN for missing joints and joints outside the crop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from event_lightning.events.core import SensorSize
from event_lightning.events.formats.dhp19_h5 import DHP19_SENSOR_SIZE
from event_lightning.metrics.triangulation import project_to_crop

__all__ = ["DHP19Crop"]


@dataclass(frozen=True)
class DHP19Crop:
    """The crop of the 346x260 sensor the networks see, and an optional sum-pooling factor.

    Attributes:
        left, top: crop offset in sensor pixels (34, 2: rows 2:258, columns 34:290).
        width, height: crop size (256 x 256).
        downsample: sum-pool factor of the cropped counts (1 = the reference resolution).
    """

    left: int = 34
    top: int = 2
    width: int = 256
    height: int = 256
    downsample: int = 1

    def __post_init__(self) -> None:
        if self.left < 0 or self.top < 0 or self.left + self.width > DHP19_SENSOR_SIZE.width:
            raise ValueError(f"DHP19Crop: columns {self.left}:{self.left + self.width} leave the 346-wide sensor")
        if self.top + self.height > DHP19_SENSOR_SIZE.height:
            raise ValueError(f"DHP19Crop: rows {self.top}:{self.top + self.height} leave the 260-high sensor")
        if self.downsample < 1 or self.width % self.downsample or self.height % self.downsample:
            raise ValueError(
                f"DHP19Crop: downsample must be >= 1 and divide the crop {self.width}x{self.height}; "
                f"found {self.downsample}"
            )

    @property
    def sensor_size(self) -> SensorSize:
        """Size of the frames the networks get: ``(width / f, height / f, 2)``."""
        f = self.downsample
        return SensorSize(self.width // f, self.height // f, 2)

    @property
    def binning_sensor(self) -> SensorSize:
        """The sensor :meth:`remap` maps onto: the pooled crop plus one spare column for the rest."""
        size = self.sensor_size
        return SensorSize(size.width + 1, size.height, 2)

    def remap(self, events: np.ndarray) -> np.ndarray:
        """Full-sensor events -> pooled crop pixels; events outside the crop go to the spare column.

        Every event is kept, so representations whose time bins depend on the first and last event
        (the reference's stacked histogram) are the same as on the full sensor; counting on the
        pooled grid equals sum-pooling the full-resolution counts. :meth:`drop_spare` removes the
        spare column afterwards.
        """
        x = events["x"].astype(np.int64) - self.left
        y = events["y"].astype(np.int64) - self.top
        inside = (x >= 0) & (x < self.width) & (y >= 0) & (y < self.height)
        f = self.downsample
        out = events.copy()
        out["x"] = np.where(inside, x // f, self.width // f)
        out["y"] = np.where(inside, y // f, 0)
        return out

    def drop_spare(self, frames: np.ndarray) -> np.ndarray:
        """``[..., H / f, W / f + 1]`` counts on :attr:`binning_sensor` -> ``[..., H / f, W / f]``."""
        return np.ascontiguousarray(frames[..., :-1])

    def crop_pool(self, frames: np.ndarray) -> np.ndarray:
        """``[..., 260, 346]`` full-sensor frames -> ``[..., H / f, W / f]``: the crop, sum-pooled."""
        crop = frames[..., self.top : self.top + self.height, self.left : self.left + self.width]
        f = self.downsample
        if f == 1:
            return np.ascontiguousarray(crop)
        pooled = crop.reshape(*crop.shape[:-2], self.height // f, f, self.width // f, f)
        return pooled.sum(axis=(-3, -1), dtype=crop.dtype)

    def landmarks(self, points_mm: np.ndarray, projection: np.ndarray) -> np.ndarray:
        """Project ``[..., 13, 3]`` mm joints to ``[..., 13, 2]`` grid pixels; NaN outside the crop
        (``0 <= x < 256``, ``0 <= y < 256`` in crop pixels, before any truncation)."""
        crop_xy = project_to_crop(
            torch.from_numpy(np.ascontiguousarray(points_mm, dtype=np.float64)),
            torch.from_numpy(projection),
            DHP19_SENSOR_SIZE.height,
            (self.left, self.top),
        ).numpy()
        grid = crop_xy / self.downsample
        size = np.array([self.width // self.downsample, self.height // self.downsample])
        # Tested before truncating, as the reference masks u < 34, v < 2 before its int cast: a
        # joint at crop x = -0.5 is outside, not truncated onto pixel 0.
        inside = np.isfinite(grid).all(-1) & ((grid >= 0) & (grid < size)).all(-1)
        return np.where(inside[..., None], grid, np.nan).astype(np.float32)
