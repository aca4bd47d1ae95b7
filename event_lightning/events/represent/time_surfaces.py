"""Global exponential time surfaces (tonic 1.7's ``ToTimesurface`` values): :func:`time_surface`."""

from __future__ import annotations

import numpy as np

from event_lightning.events.core import SensorSize
from event_lightning.events.represent.pixels import _as_events, _pixel_index
from event_lightning.events.represent.slicing import FrameSlicing, _expand_ranges, _slice_bounds


def _surfaces(
    t: np.ndarray, pix: np.ndarray, first_sample: np.ndarray, ref: np.ndarray, tau: float, sensor: SensorSize
) -> np.ndarray:
    """``exp(−(ref_k − last_t)/tau)`` with last_t the latest event seen by sample k per pixel.

    ``first_sample[j]`` is the first sample that sees event j (``>= len(ref)``: none); later
    samples see it too, which is a running maximum over the sample axis.
    """
    n_samples, frame_size = len(ref), sensor.num_features
    seen = first_sample < n_samples
    latest = np.full(n_samples * frame_size, -np.inf)
    np.maximum.at(latest, first_sample[seen] * frame_size + pix[seen], t[seen].astype(np.float64))
    surfaces = latest.reshape(n_samples, frame_size)
    running = np.full(frame_size, -np.inf)
    # A time loop with state (the running max), one cache-sized row at a time; the row then
    # becomes exp(−(ref − latest)/tau) in place, in tonic's operation order (bit-identical).
    for k, row in enumerate(surfaces):
        np.maximum(running, row, out=running)
        np.subtract(ref[k], running, out=row)
        np.negative(row, out=row)
        np.divide(row, tau, out=row)
        np.exp(row, out=row)
    return surfaces.reshape(n_samples, *sensor.frame_shape)


def time_surface(
    events: np.ndarray,
    sensor_size: SensorSize | tuple[int, int, int],
    *,
    tau: float,
    dt: float | None = None,
    sample_times: np.ndarray | None = None,
) -> np.ndarray:
    """Global exponential time surfaces -> float64 ``(T, P, H, W)`` in ``[0, 1]``.

    Value at sample time ``s`` and pixel ``(p, y, x)``: ``exp(−(s − t_last)/tau)`` with
    ``t_last`` the latest event there strictly before ``s``; 0 where there is none.

    - ``dt`` (µs): tonic ``ToTimesurface(dt, tau)`` semantics, identical values: the stream is
      cut into ``dt`` windows from the first event (``⌊(t_last − t_first − dt)/dt⌋ + 1`` of
      them, at least 1; events after the last full window are ignored) and surface ``i`` is
      read at ``t_first + (i + 1)·dt``.
    - ``sample_times`` (µs, ascending): read at exactly these times.

    ``tau`` is in µs. An empty stream gives zeros (one surface in ``dt`` mode).
    """
    sensor = SensorSize.coerce(sensor_size)
    if (dt is None) == (sample_times is None):
        raise ValueError("time_surface: give exactly one of dt (µs) or sample_times (µs)")
    if tau <= 0:
        raise ValueError(f"time_surface: tau must be > 0 µs, found {tau!r}")
    events = _as_events(events)
    pix = _pixel_index(events, sensor, "time_surface")
    t = events["t"]
    if sample_times is not None:
        ref = np.asarray(sample_times)
        if ref.ndim != 1 or (np.diff(ref) < 0).any():
            raise ValueError("time_surface: sample_times must be a 1-D ascending array of µs")
        return _surfaces(t, pix, np.searchsorted(ref, t, side="right"), ref, tau, sensor)
    if dt <= 0:
        raise ValueError(f"time_surface: dt must be > 0 µs, found {dt!r}")
    if len(t) == 0:
        return np.zeros((1, *sensor.frame_shape))
    starts, ends = _slice_bounds(t, FrameSlicing(time_window=dt))
    ref = (np.arange(len(ends)) + 1) * dt + t[0]
    # The window holding each event (len(ends): none). Windows are back to back unless float
    # rounding leaves a gap between them; tonic skips the events in such a gap, and so do we.
    first_sample = np.full(len(t), len(ends))
    if np.array_equal(starts[1:], ends[:-1]):
        first_sample[starts[0] : ends[-1]] = np.repeat(np.arange(len(ends)), ends - starts)
    else:
        window, event = _expand_ranges(starts, ends)
        np.minimum.at(first_sample, event, window)
    return _surfaces(t, pix, first_sample, ref, tau, sensor)
