"""The hybrid pose reference's voxel grid (``data_representations.VoxelGrid``), an input option of
every pose model (``data.representation: voxel_grid``).

It is not tonic's voxel grid (:mod:`event_lightning.events.represent.voxel`, whose semantics stay
tonic-exact): the reference scales time by ``C - 1`` rather than ``C`` (the first and last event
sit on the centres of the first and last bin), adds ``2 p - 1`` with bilinear weights in time only
(pixels are integers), and standardises the result: the non-zero cells of the whole sensor's grid
minus their mean, divided by their (unbiased) standard deviation when it is > 0.
"""

from __future__ import annotations

import numpy as np

from event_lightning.events.core import SensorSize

__all__ = ["pose_voxel_grid"]


def pose_voxel_grid(
    events: np.ndarray, sensor: SensorSize, n_bins: int, t_range_us: tuple[int, int] | None = None
) -> np.ndarray:
    """The reference's normalised voxel grid of one slice of events.

    Args:
        events: a time-sorted structured event array (0-based ``x``, ``y``, ``p`` in {0, 1}, ``t`` µs).
        sensor: the sensor the pixels live on (the full 346 x 260 DHP19 sensor: the standardisation
            sees every pixel, as in the reference, which crops afterwards).
        n_bins: time bins ``C``.
        t_range_us: ``(t_first, t_last)`` that map to bins 0 and ``C - 1``; None = the slice's first
            and last event (the reference).

    Returns:
        float32 ``[C, H, W]``; all zeros for an empty slice. A slice spanning no time puts every
        event in bin 0 (the reference divides by zero there).
    """
    height, width = sensor.height, sensor.width
    grid = np.zeros(n_bins * height * width, dtype=np.float64)
    if len(events) == 0:
        return grid.reshape(n_bins, height, width).astype(np.float32)
    t = events["t"].astype(np.int64)
    t_first, t_last = (int(t[0]), int(t[-1])) if t_range_us is None else t_range_us
    # float32 as the reference's torch division of integer tensors
    scaled = ((n_bins - 1) * (t - t_first)).astype(np.float32)
    t_norm = scaled / np.float32(t_last - t_first) if t_last > t_first else np.zeros_like(scaled)
    value = (2 * events["p"].astype(np.float32) - 1).astype(np.float32)
    pixel = events["y"].astype(np.int64) * width + events["x"].astype(np.int64)
    lower = np.floor(t_norm).astype(np.int64)
    for bin_index in (lower, lower + 1):
        weight = value * (1 - np.abs(bin_index - t_norm))
        valid = (bin_index >= 0) & (bin_index < n_bins)
        grid += np.bincount(bin_index[valid] * height * width + pixel[valid], weight[valid], minlength=grid.size)
    nonzero = grid != 0
    if nonzero.any():
        cells = grid[nonzero]
        mean = cells.mean()
        std = cells.std(ddof=1) if len(cells) > 1 else 0.0
        grid[nonzero] = (cells - mean) / std if std > 0 else cells - mean
    return grid.reshape(n_bins, height, width).astype(np.float32)
