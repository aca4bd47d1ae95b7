"""Event-camera simulator: intensity frames -> events (ESIM / v2e-style change detector).

Model, per pixel:

* the pixel sees log intensity ``L = log(I + log_eps)``;
* it keeps a reference ``L_ref`` (the brightness memorised at its last event), initialised to
  the first frame, so the first frame itself produces no events;
* between two frames ``L`` moves linearly in time; every time ``L`` crosses ``L_ref + k * C_on``
  (or ``L_ref - k * C_off``) an ON (OFF) event is emitted, timestamped where the linear ramp
  crosses that level, and ``L_ref`` moves by one threshold per emitted event;
* thresholds differ per pixel: ``C ~ N(C_nominal, threshold_sigma)``, clipped at
  ``min_threshold`` (transistor mismatch), drawn once per call;
* refractory period: an event closer than ``refractory_us`` to the previous *emitted* event of the
  same pixel is dropped, and -- as in v2e's ``EventEmulator.generate_events``, which adds only the
  emitted events to its memorised brightness -- the reference does **not** move for a dropped
  event.  A suppressed change is therefore not lost: if the brightness stays changed, the pixel
  fires once the refractory period is over (at the start of a later frame interval), the way a
  real pixel held in reset does;
* optional background activity: a Poisson process per pixel at ``noise_rate_hz``, random
  polarity, independent of the signal path (it neither moves the reference nor is subject to the
  refractory filter).

Only the loop over frame pairs is in Python (the reference is state); inside one frame pair all
crossings of all pixels are computed at once.  Output timestamps are integer microseconds
(floor of the interpolated time) and the stream is sorted by ``(t, y, x, p)``, so the result does
not depend on the order in which crossings were generated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from event_lightning.events.core import EVENT_DTYPE

__all__ = ["SimulatorConfig", "simulate_events"]

# Tolerance when counting crossings, in thresholds: a change of exactly k thresholds must give
# k events despite round-off (the log is taken in float32, relative error ~1e-7).
_COUNT_TOLERANCE = 1e-5


@dataclass(frozen=True)
class SimulatorConfig:
    """Parameters of the change detector.

    Attributes:
        pos_threshold: nominal ON contrast threshold, in log-intensity units.
        neg_threshold: nominal OFF contrast threshold, in log-intensity units (positive number).
        threshold_sigma: standard deviation of the per-pixel threshold mismatch (log units).
        min_threshold: floor for a pixel's threshold after mismatch (log units, > 0).
        refractory_us: minimum time between two emitted events of one pixel, µs (0 = off).
        log_eps: offset inside the logarithm, ``log(I + log_eps)``; sets the darkest
            distinguishable intensity (intensities are in [0, 1]).
        noise_rate_hz: background-activity rate per pixel, Hz (0 = off).
    """

    pos_threshold: float = 0.2
    neg_threshold: float = 0.2
    threshold_sigma: float = 0.03
    min_threshold: float = 0.01
    refractory_us: int = 0
    log_eps: float = 1e-3
    noise_rate_hz: float = 0.0

    def __post_init__(self) -> None:
        for name in ("pos_threshold", "neg_threshold", "min_threshold", "log_eps"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"SimulatorConfig.{name} must be a positive number, found {value!r}")
        for name in ("threshold_sigma", "noise_rate_hz", "refractory_us"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"SimulatorConfig.{name} must be >= 0, found {value!r}")
        if int(self.refractory_us) != self.refractory_us:
            raise ValueError(f"SimulatorConfig.refractory_us must be whole µs, found {self.refractory_us!r}")


def _check_inputs(frames: np.ndarray, timestamps_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    frames = np.asarray(frames)
    timestamps = np.asarray(timestamps_us)
    if frames.ndim != 3:
        raise ValueError(f"frames must have shape [N, H, W]; found shape {frames.shape}")
    if frames.shape[0] < 1 or frames.shape[1] < 1 or frames.shape[2] < 1:
        raise ValueError(f"frames must hold at least one frame of at least 1x1 pixels; found {frames.shape}")
    if frames.dtype.kind not in "fiu":
        raise ValueError(f"frames must be real-valued intensities; found dtype {frames.dtype}")
    if timestamps.shape != (frames.shape[0],):
        raise ValueError(
            f"timestamps_us must have shape [N] = ({frames.shape[0]},) to match frames; "
            f"found {timestamps.shape}"
        )
    if timestamps.dtype.kind not in "iu":
        if timestamps.dtype.kind != "f" or not np.all(timestamps == np.round(timestamps)):
            raise ValueError(f"timestamps_us must be whole microseconds; found dtype {timestamps.dtype}")
    timestamps = timestamps.astype(np.int64)
    if timestamps.size and timestamps[0] < 0:
        raise ValueError(f"timestamps_us must be >= 0; found {int(timestamps[0])}")
    steps = np.diff(timestamps)
    if (steps <= 0).any():
        i = int(np.flatnonzero(steps <= 0)[0])
        raise ValueError(
            "timestamps_us must be strictly increasing; found "
            f"{int(timestamps[i])} then {int(timestamps[i + 1])} at index {i + 1}"
        )
    if frames.dtype != np.float32:
        frames = frames.astype(np.float64)
    if not np.isfinite(frames).all():
        raise ValueError("frames contain NaN or infinite intensities")
    low, high = float(frames.min()), float(frames.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(f"frames must be intensities in [0, 1]; found values in [{low}, {high}]")
    return frames, timestamps


def _pixel_thresholds(nominal: float, shape: tuple[int, int], config: SimulatorConfig, rng) -> np.ndarray:
    if config.threshold_sigma == 0:
        return np.full(shape, max(nominal, config.min_threshold))
    return np.maximum(nominal + config.threshold_sigma * rng.standard_normal(shape), config.min_threshold)


def _rank_within_groups(counts: np.ndarray) -> np.ndarray:
    """``[1..c0, 1..c1, ...]`` for group sizes ``counts``: the crossing index k of each event."""
    starts = np.cumsum(counts) - counts
    return np.arange(int(counts.sum())) - np.repeat(starts, counts) + 1


def _refractory_keep(
    group_pixels: np.ndarray, counts: np.ndarray, t: np.ndarray, last_t: np.ndarray, refractory_us: int
) -> np.ndarray:
    """Keep mask for candidate events grouped by pixel (each group in increasing time).

    The filter is sequential within a pixel (whether crossing k survives depends on which earlier
    one survived), so it loops over the crossing rank -- a handful per frame interval -- with all
    pixels handled at once in each step.  ``last_t`` (flat, per pixel, µs) is updated in place.
    """
    starts = np.cumsum(counts) - counts
    keep = np.zeros(t.shape, dtype=bool)
    last = last_t[group_pixels]
    for rank in range(int(counts.max())):
        alive = np.flatnonzero(counts > rank)
        idx = starts[alive] + rank
        ok = t[idx] >= last[alive] + refractory_us
        keep[idx[ok]] = True
        last[alive[ok]] = t[idx[ok]]
    last_t[group_pixels] = last
    return keep


def _crossings(
    l0: np.ndarray,
    l1: np.ndarray,
    ref: np.ndarray,
    c_on: np.ndarray,
    c_off: np.ndarray,
    t0: int,
    t1: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All threshold crossings of one frame interval, over flat pixel arrays.

    Returns ``(group_pixels, counts, sign, t)``: per active pixel (group) its flat index, its
    crossing count and sign (+1 ON, -1 OFF); per candidate event (grouped by pixel, in time
    order) its integer timestamp in µs.
    """
    delta = l1 - ref
    n_on = np.floor(np.maximum(delta, 0.0) / c_on + _COUNT_TOLERANCE)
    n_off = np.floor(np.maximum(-delta, 0.0) / c_off + _COUNT_TOLERANCE)
    n = (n_on + n_off).astype(np.int64)
    group_pixels = np.flatnonzero(n)
    counts = n[group_pixels]
    sign = np.where(delta[group_pixels] > 0, 1.0, -1.0)
    step = sign * np.where(sign > 0, c_on[group_pixels], c_off[group_pixels])
    pixel = np.repeat(group_pixels, counts)
    level = ref[pixel] + np.repeat(step, counts) * _rank_within_groups(counts)
    start = l0[pixel]
    offset = level - start
    slope = l1[pixel] - start
    # A level the ramp had already passed at t0 (possible when the refractory filter held events
    # back in an earlier interval) is due at once: timestamp t0.
    ahead = np.repeat(sign, counts) * offset > 0
    frac = np.zeros(offset.shape)
    np.divide(offset, slope, out=frac, where=ahead & (slope != 0))
    frac = np.clip(frac, 0.0, 1.0)
    t = t0 + np.floor(frac * (t1 - t0)).astype(np.int64)
    return group_pixels, counts, sign, t


def _background_noise(
    shape: tuple[int, int], t_start: int, t_end: int, rate_hz: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poisson background activity: ``(flat pixel, t µs in [t_start, t_end), polarity 0/1)``."""
    duration_us = t_end - t_start
    if rate_hz <= 0 or duration_us <= 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    counts = rng.poisson(rate_hz * duration_us * 1e-6, size=shape[0] * shape[1])
    pixel = np.repeat(np.arange(counts.size), counts)
    t = rng.integers(t_start, t_end, size=pixel.size, dtype=np.int64)
    polarity = rng.integers(0, 2, size=pixel.size, dtype=np.int64)
    return pixel, t, polarity


def simulate_events(
    frames: np.ndarray,
    timestamps_us: np.ndarray,
    config: SimulatorConfig | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Simulate the events a DVS pixel array emits while watching ``frames``.

    Args:
        frames: ``[N, H, W]`` intensities in ``[0, 1]`` (row = y, column = x).
        timestamps_us: ``[N]`` strictly increasing frame times, whole µs.
        config: detector parameters (defaults: :class:`SimulatorConfig`).
        rng: source of the threshold mismatch and background noise; ``None`` means
            ``np.random.default_rng(0)``, so calls are reproducible by default.

    Returns:
        An :data:`EVENT_DTYPE` array sorted by ``(t, y, x, p)``, ``t`` in µs within
        ``[timestamps_us[0], timestamps_us[-1]]``.
    """
    config = config or SimulatorConfig()
    rng = rng if rng is not None else np.random.default_rng(0)
    frames, timestamps = _check_inputs(frames, timestamps_us)
    n_frames, height, width = frames.shape
    # float32 log: ~5x faster than float64 on CPUs without AVX-512, and its ~1e-7 relative error
    # is far below any contrast threshold; the reference itself is kept in float64.
    log_frames = np.log(frames.reshape(n_frames, -1).astype(np.float32) + np.float32(config.log_eps))
    c_on = _pixel_thresholds(config.pos_threshold, (height, width), config, rng).reshape(-1)
    c_off = _pixel_thresholds(config.neg_threshold, (height, width), config, rng).reshape(-1)
    ref = log_frames[0].astype(np.float64)
    refractory = int(config.refractory_us)
    # "Never fired": far enough in the past that any first crossing passes the filter.
    last_t = np.full(height * width, -(2**62), dtype=np.int64)

    pixels, times, polarities = [], [], []
    for k in range(n_frames - 1):
        group_pixels, counts, sign, t = _crossings(
            log_frames[k], log_frames[k + 1], ref, c_on, c_off, int(timestamps[k]), int(timestamps[k + 1])
        )
        if counts.size == 0:
            continue
        if refractory > 0:
            keep = _refractory_keep(group_pixels, counts, t, last_t, refractory)
            emitted = np.add.reduceat(keep.astype(np.int64), np.cumsum(counts) - counts)
            t = t[keep]
        else:
            emitted = counts
        # Only emitted events move the reference (v2e semantics, see the module docstring).
        ref[group_pixels] += emitted * sign * np.where(sign > 0, c_on[group_pixels], c_off[group_pixels])
        pixels.append(np.repeat(group_pixels, emitted))
        times.append(t)
        polarities.append(np.repeat((sign > 0).astype(np.int64), emitted))

    noise = _background_noise(
        (height, width), int(timestamps[0]), int(timestamps[-1]), config.noise_rate_hz, rng
    )
    pixel = np.concatenate([*pixels, noise[0]]).astype(np.int64)
    t = np.concatenate([*times, noise[1]]).astype(np.int64)
    p = np.concatenate([*polarities, noise[2]]).astype(np.int64)

    y, x = np.divmod(pixel, width)
    order = np.lexsort((p, x, y, t))
    events = np.empty(order.size, dtype=EVENT_DTYPE)
    events["x"] = x[order]
    events["y"] = y[order]
    events["t"] = t[order]
    events["p"] = p[order]
    return events
