"""Voxel grids with bilinear weights in time (Zhu et al. 2019): :func:`voxel_grid`.

Bit-identical to tonic 1.7's ``ToVoxelGrid``, computed by one compiled pass that checks and adds
every event (:mod:`event_lightning.events.kernels.voxel`). Where the compiled kernels cannot load,
numpy sums a long stream in blocks of whole bins with cache-sized scratch arrays reused from block
to block, the event checks of :func:`~event_lightning.events.core.validate` fused into the same
pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from event_lightning.events.core import EVENT_DTYPE, SensorSize, validate
from event_lightning.events.kernels.loading import compiled_kernels
from event_lightning.events.represent.pixels import _as_events

# Events per block of the voxel-grid pass. Its scratch arrays (~70 bytes per event) are reused
# from block to block and stay cache-resident; event-sized temporaries would be page-faulted
# afresh on every call, which costs more than the arithmetic.
_VOXEL_BLOCK = 32_768
# Right parts the compiled pass keeps per bin's run (its first events; later ones are recomputed):
# the two runs' scratch (12 bytes per event each) and a 128x128 grid row stay in a 1 MiB L2 cache.
_RUN_KEPT = 32_768
# Integer times below 2**53 convert to float64 exactly: the float times are then sorted iff the
# integer times are, so the order check can run on the float times computed anyway.
_FLOAT_EXACT = 2**53


@dataclass(frozen=True)
class _TimeScale:
    """tonic's ``τ = T·(t − t_first)/(t_last − t_first)`` with its float operations in its order."""

    t_first: float
    n_bins: float
    span: float  # 0.0 for a stream spanning no time: τ = 0 everywhere then

    def shifted(self, t: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``float64(t) − t_first``."""
        return np.subtract(t, self.t_first, out=out)

    def tau_in_place(self, shifted: np.ndarray) -> np.ndarray:
        """``shifted`` (from :meth:`shifted`) turned into τ in place."""
        np.multiply(shifted, self.n_bins, out=shifted)
        if self.span:
            np.divide(shifted, self.span, out=shifted)
        return shifted


def _bin_starts(t: np.ndarray, scale: _TimeScale, n_bins: int) -> list[int]:
    """First event index with ``τ ≥ b`` for ``b = 0 … T``: ``T + 1`` non-decreasing values.

    τ is evaluated with tonic's formula on a coarse sample (every ``step``-th event) to bracket
    each start, then on the ``step − 1`` events inside each bracket, so a start is exact without
    computing τ for the whole stream (``step ≈ √(n/T)`` balances the two). Assumes sorted times
    (τ non-decreasing); for unsorted times the values are only clamped into order, and the pass
    that uses them rejects the stream.
    """
    n = len(t)
    step = max(2, math.isqrt(n // n_bins))
    thresholds = np.arange(1, n_bins + 1, dtype=np.float64)
    coarse = scale.tau_in_place(scale.shifted(t[::step]))
    # the first sample with τ >= b is sample `above` (>= 1: sample 0 has τ = 0): the start lies
    # in ((above - 1)·step, above·step], decided by the step - 1 events in between
    above = np.maximum(np.searchsorted(coarse, thresholds), 1)
    first = (above - 1) * step + 1
    window = first[:, None] + np.arange(step - 1)
    tau = scale.tau_in_place(scale.shifted(t[np.minimum(window, n - 1)]))
    below = (tau < thresholds[:, None]) & (window < n)
    starts = np.minimum(first + below.sum(axis=1), n)
    return [0, *np.maximum.accumulate(starts).tolist()]


def _bin_groups(starts: list[int], n_bins: int) -> list[tuple[int, int]]:
    """Consecutive bins ``[b0, b1)`` whose events make one block: whole bins, at most
    ``_VOXEL_BLOCK`` events unless one bin alone has more."""
    groups, b0 = [], 0
    while b0 < n_bins:
        b1 = b0 + 1
        while b1 < n_bins and starts[b1 + 1] - starts[b0] <= _VOXEL_BLOCK:
            b1 += 1
        groups.append((b0, b1))
        b0 = b1
    return groups


class _VoxelScratch:
    """Block-sized arrays reused by every block of one :func:`voxel_grid` call, carved from one
    allocation (one allocator call instead of twelve). ``pix`` and ``right`` come in two sets,
    alternated per block, because the right parts of a block's last bin are added only after the
    next block's left parts."""

    _LAYOUT = (
        ("time", np.float64),  # t − t_first, then τ, then frac(τ), then the left weights
        ("sign", np.float64),
        ("right0", np.float64),
        ("right1", np.float64),
        ("pix0", np.intp),
        ("pix1", np.intp),
        ("cell", np.intp),
        ("xy", np.uint32),
        ("x", np.uint32),
        ("y", np.uint32),
        ("p", np.int8),
        ("increasing", np.bool_),
    )

    def __init__(self, size: int) -> None:
        # 8-byte multiples keep every carved array aligned
        rounded = -(-size // 8) * 8
        memory = np.empty(sum(np.dtype(kind).itemsize for _, kind in self._LAYOUT) * rounded, np.uint8)
        offset = 0
        for name, kind in self._LAYOUT:
            nbytes = np.dtype(kind).itemsize * rounded
            setattr(self, name, memory[offset : offset + nbytes].view(kind))
            offset += nbytes
        self.right = (self.right0, self.right1)
        self.pix = (self.pix0, self.pix1)


def _load_block(
    fields: tuple[np.ndarray, ...],
    start: int,
    stop: int,
    sensor: SensorSize,
    scale: _TimeScale,
    check_order: bool,
    scratch: _VoxelScratch,
) -> bool:
    """Copy events ``[start, stop)`` into ``scratch`` (x, y, p, ``t − t_first``) and check them
    against the contract; False when any of them (or the order across ``start``) breaks it."""
    xys, ts, ps = fields
    size = stop - start
    shifted = scale.shifted(ts[start:stop], out=scratch.time[:size])
    if check_order and (
        (start and ts[start - 1] > ts[start])
        or np.less(shifted[1:], shifted[:-1], out=scratch.increasing[: size - 1]).any()
    ):
        return False
    xy = scratch.xy[:size]
    np.copyto(xy, xys[start:stop])  # x and y in one strided read: x the low, y the high half
    x, y, p = scratch.x[:size], scratch.y[:size], scratch.p[:size]
    np.bitwise_and(xy, 0xFFFF, out=x)
    np.right_shift(xy, 16, out=y)
    np.copyto(p, ps[start:stop])
    # as unsigned, a negative int16 / int8 is larger than any bound
    return x.max() < sensor.width and y.max() < sensor.height and p.view(np.uint8).max() < 2


def _reject(events: np.ndarray, sensor: SensorSize) -> None:
    """Raise :func:`validate`'s error for a stream that failed a check of the voxel pass."""
    validate(events, sensor, origin="voxel_grid")
    raise AssertionError("voxel_grid: a block check failed but validate() accepts the stream")


def _whole_stream_grid(events: np.ndarray, sensor: SensorSize, n_bins: int) -> np.ndarray:
    """The voxel grid ``(T, H·W)`` of a short, validated, non-empty stream in one pass.

    One bincount over (all left parts, then all right parts): per cell the same addition order
    as tonic's two sequential ``np.add.at``. Parts that tonic drops (bin >= T) land in two spare
    bins past the end, cut off after (adding them elsewhere never changes the kept sums). Below
    ``_VOXEL_BLOCK`` events the event-sized temporaries are small, and one pass beats the
    block-wise one's fixed costs.
    """
    n, plane = len(events), sensor.width * sensor.height
    t = events["t"]
    span = t[-1] - t[0]
    tau = t.astype(float)  # n_bins * (t - t_first) / span, in place (same float operations and order)
    tau -= t[0]
    tau *= n_bins
    if span:
        tau /= span
    sign = np.where(events["p"] > 0, 1.0, -1.0)
    bins = tau.astype(np.int64)
    frac = tau - bins
    index = np.empty(2 * n, dtype=np.int64)
    left_index, right_index = index[:n], index[n:]
    np.multiply(bins, plane, out=left_index)
    left_index += events["y"].astype(np.int64) * sensor.width
    left_index += events["x"]
    np.add(left_index, plane, out=right_index)
    weight = np.empty(2 * n)
    np.subtract(1.0, frac, out=weight[:n])
    weight[:n] *= sign
    np.multiply(sign, frac, out=weight[n:])
    grid = np.bincount(index, weights=weight, minlength=(n_bins + 2) * plane)[: n_bins * plane]
    return grid.reshape(n_bins, plane)


# x and y (int16) packed little-endian in the first 4 bytes of an EVENT_DTYPE record
_XY_VIEW = np.dtype({"names": ["xy"], "formats": ["<u4"], "offsets": [0], "itemsize": EVENT_DTYPE.itemsize})


def voxel_grid(
    events: np.ndarray, sensor_size: SensorSize | tuple[int, int, int], n_time_bins: int
) -> np.ndarray:
    """Event volume with bilinear weights in time (Zhu et al. 2019) -> float64 ``(T, 1, H, W)``.

    Times map to ``τ = T·(t − t_first)/(t_last − t_first)``; an event adds ``±(1 − frac(τ))`` to
    bin ``⌊τ⌋`` and ``±frac(τ)`` to the next bin (bins ``≥ T`` dropped, so events at ``t_last``
    add nothing), with polarity 1 -> +1 and 0 -> −1. Bit-identical to tonic's ``ToVoxelGrid``
    for integer polarity; for bool polarity tonic counts every event positive, here polarity is
    cast to signed first. A stream spanning zero time puts everything in bin 0 (tonic divides by
    zero); an empty stream gives zeros.

    How the float sums keep tonic's order: tonic adds all left parts, then all right parts, each
    in stream order, so a cell of bin ``b`` gets the left parts of bin ``b``'s events, then the
    right parts of bin ``b − 1``'s events. Times are sorted, so each bin's events are one
    contiguous run (its start found with tonic's exact τ formula). A long stream is processed in
    blocks of whole bins (~32k events, cache-sized scratch reused, no event-sized temporaries):
    each block adds its left parts, then the held-back right parts of the previous block's last
    bin, then its other right parts, each with a sequential ``np.bincount`` / ``np.add.at``. The
    event checks of :func:`validate` run on the same block copies; any failure raises
    :func:`validate`'s own error. A stream of at most ``_VOXEL_BLOCK`` events is one block: it
    is validated and summed in a single bincount over (all left parts; all right parts). The
    compiled kernel follows the same order event by event, in one pass (see
    :func:`~event_lightning.events.kernels.voxel.add_voxel_weights`).
    """
    sensor = SensorSize.coerce(sensor_size)
    if sensor.polarities != 2:
        raise ValueError(f"voxel_grid: needs a 2-polarity sensor (signed events); found {sensor}")
    if not isinstance(n_time_bins, int | np.integer) or n_time_bins <= 0:
        raise ValueError(f"voxel_grid: n_time_bins must be a positive integer, found {n_time_bins!r}")
    plane = sensor.width * sensor.height
    if plane > 2**32:  # pixel indices are computed in uint32
        raise ValueError(f"voxel_grid: at most 2**32 pixels per bin, found {sensor} ({plane} pixels)")
    n_bins = int(n_time_bins)
    events = _as_events(events)
    n = len(events)
    kernels = compiled_kernels("voxel")
    if kernels is not None:
        grid = np.empty(n_bins * plane) if n else np.zeros(n_bins * plane)
        if n:  # the kernel zeroes each bin's row before adding to it
            t_first, t_last = int(events["t"][0]), int(events["t"][-1])
            span = float(t_last - t_first)  # tonic's int64 difference, then as float
            kept = min(n, _RUN_KEPT)
            rights, cells = np.empty((2, kept)), np.empty((2, kept), dtype=np.uint32)
            arguments = (n_bins, sensor.width, sensor.height, float(t_first), span, rights, cells)
            if kernels.add_voxel_weights(events, grid, *arguments) >= 0:
                _reject(events, sensor)
        return grid.reshape(n_bins, 1, sensor.height, sensor.width)
    if n <= _VOXEL_BLOCK:  # one block: a single pass over the whole stream is cheaper
        validate(events, sensor, origin="voxel_grid")
        grid = _whole_stream_grid(events, sensor, n_bins) if n else np.zeros((n_bins, plane))
        return grid.reshape(n_bins, 1, sensor.height, sensor.width)
    grid = np.empty((n_bins, plane))
    t = events["t"]
    fields = (events.view(_XY_VIEW)["xy"], t, events["p"])
    t_first, t_last = int(t[0]), int(t[-1])
    # Outside [0, 2**53) or with t_first > t_last the float order check is not exact (or the
    # stream is invalid anyway): validate everything up front (raises for invalid streams).
    check_order = 0 <= t_first <= t_last < _FLOAT_EXACT
    if not check_order:
        validate(events, sensor, origin="voxel_grid")
    scale = _TimeScale(float(t_first), float(n_bins), float(t_last - t_first))
    starts = _bin_starts(t, scale, n_bins)
    groups = _bin_groups(starts, n_bins)
    size = max(1, max(starts[b1] - starts[b0] for b0, b1 in groups))
    scratch = _VoxelScratch(size)
    flat = grid.reshape(-1)
    held: tuple[np.ndarray, np.ndarray] | None = None  # (pixel, weight): right parts of the last bin
    for number, (b0, b1) in enumerate(groups):
        start, stop = starts[b0], starts[b1]
        count = stop - start
        if count and not _load_block(fields, start, stop, sensor, scale, check_order, scratch):
            _reject(events, sensor)
        if b1 - b0 > 1:
            grid[b0:b1].fill(0.0)  # just before the scattered adds: the rows are then cache-hot
        frac = scale.tau_in_place(scratch.time[:count])
        single = b1 - b0 == 1
        if single:  # every event of the block has ⌊τ⌋ = b0
            np.subtract(frac, b0, out=frac)
        else:
            cell = scratch.cell[:count]
            np.copyto(cell, frac, casting="unsafe")  # ⌊τ⌋ (τ >= 0), as tonic's astype(int)
            np.subtract(frac, cell, out=frac)
        signs = scratch.p[:count]  # polarity 0/1 -> -1/+1 in place, then as float
        np.multiply(signs, 2, out=signs)
        np.subtract(signs, 1, out=signs)
        sign = scratch.sign[:count]
        np.copyto(sign, signs)
        right = scratch.right[number % 2][:count]
        np.multiply(frac, sign, out=right)
        # sign·(1 − frac) bit for bit: ±1 ∓ frac rounds symmetrically; frac is not needed after
        left = np.subtract(sign, right, out=frac)
        x, y = scratch.x[:count], scratch.y[:count]
        np.multiply(y, sensor.width, out=y)
        np.add(y, x, out=y)
        pix = scratch.pix[number % 2][:count]
        np.copyto(pix, y)
        if single:
            grid[b0] = np.bincount(pix, left, minlength=plane)
        else:
            np.multiply(cell, plane, out=cell)
            np.add(cell, pix, out=cell)
            np.add.at(flat, cell, left)
        if held is not None:
            np.add.at(grid[b0], *held)
        # right parts into bins b0 + 1 … b1 − 1 (their left parts are in); the last bin's wait
        inner = starts[b1 - 1] - start
        if inner:
            np.add(cell[:inner], plane, out=cell[:inner])
            np.add.at(flat, cell[:inner], right[:inner])
        held = (pix[inner:], right[inner:]) if b1 < n_bins and count > inner else None
    # events with τ >= T (at t_last) add nothing, but must pass the checks too
    for start in range(starts[n_bins], n, size):
        if not _load_block(fields, start, min(start + size, n), sensor, scale, check_order, scratch):
            _reject(events, sensor)
    return grid.reshape(n_bins, 1, sensor.height, sensor.width)
