"""Frames of a whole batch of event streams already on a device, in torch: :func:`to_frame_torch`.

Per sample equal to :func:`~event_lightning.events.represent.frames.to_frame` in all four slicing
modes, returned time-first as ``[T, B, P, H, W]``.
"""

from __future__ import annotations

import torch

from event_lightning.events.core import EventFormatError, SensorSize
from event_lightning.events.represent.slicing import FrameSlicing


def _torch_slice_bounds(
    t: torch.Tensor, first: torch.Tensor, n_events: torch.Tensor, cfg: FrameSlicing, n_frames: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample frame ranges ``[start, end)`` as ranks within each sample: two ``[B, K]`` tensors.

    Same formulas as :func:`_slice_bounds`, vectorised over the batch; frames past a sample's
    own frame count get empty ranges (zero padding at the end, as tonic's PadTensors does).
    """
    device = t.device
    batch = n_events.numel()
    nonempty = n_events > 0
    last = (first + n_events - 1).clamp(min=0)
    if t.numel():
        t_first = torch.where(nonempty, t[first.clamp(max=t.numel() - 1)], 0)
        t_last = torch.where(nonempty, t[last.clamp(max=t.numel() - 1)], 0)
    else:
        t_first = t_last = torch.zeros(batch, dtype=torch.int64, device=device)

    if cfg.mode in ("time_window", "n_time_bins"):
        # numpy promotes to float64 as soon as one option is a float; torch would pick float32
        # for (int tensor) * (python float), so the working dtype is chosen explicitly.
        is_float = any(
            isinstance(v, float) for v in (cfg.time_window, cfg.overlap, cfg.start_time, cfg.end_time)
        )
        work = torch.float64 if is_float else torch.int64
        if cfg.mode == "time_window":
            stride = cfg.time_window - cfg.overlap
            start = (
                t_first.to(work)
                if cfg.start_time is None
                else torch.full((batch,), cfg.start_time, dtype=work)
            )
            end = t_last.to(work) if cfg.end_time is None else torch.full((batch,), cfg.end_time, dtype=work)
            start, end = start.to(device), end.to(device)
            ratio = (end - start - cfg.time_window).double() / stride
            rounded = torch.ceil(ratio) if cfg.include_incomplete else torch.floor(ratio)
            n_slices = torch.where(nonempty, (rounded + 1).long().clamp(min=1), 1)
            stride_b = torch.full((batch,), stride, dtype=work, device=device)
            window = torch.full((batch,), cfg.time_window, dtype=work, device=device)
        else:
            n_slices = torch.full((batch,), cfg.n_time_bins, dtype=torch.int64, device=device)
            start = t_first
            window = torch.div(t_last - t_first, cfg.n_time_bins, rounding_mode="floor").to(work) * (
                1 + cfg.overlap
            )
            stride_b = window * (1 - cfg.overlap)
        n_cols = int(n_slices.max()) if n_frames is None else n_frames
        k = torch.arange(n_cols, device=device, dtype=stride_b.dtype)
        window_starts = k[None, :] * stride_b[:, None] + start[:, None]
        window_ends = window_starts + window[:, None]
        # Sorted per-sample time rows padded with +inf-like values, so searchsorted can run on
        # the whole batch at once; numpy compares int64 times with float boundaries as float64.
        dtype = window_starts.dtype
        pad_value = torch.inf if dtype.is_floating_point else torch.iinfo(torch.int64).max
        width = max(int(n_events.max()) if batch else 0, 1)
        rows = torch.full((batch, width), pad_value, dtype=dtype, device=device)
        if t.numel():
            sample = torch.repeat_interleave(
                torch.arange(batch, device=device), n_events, output_size=t.numel()
            )
            rank = torch.arange(t.numel(), device=device) - first[sample]
            rows[sample, rank] = t.to(dtype)
        starts = torch.searchsorted(rows, window_starts.contiguous())
        ends = torch.searchsorted(rows, window_ends.contiguous())
    else:
        n = n_events
        if cfg.mode == "event_count":
            count = n.clamp(max=cfg.event_count)
            stride = cfg.event_count - cfg.overlap
            ratio = (n - count).double() / stride
            rounded = torch.ceil(ratio) if cfg.include_incomplete else torch.floor(ratio)
            n_slices = torch.where(nonempty, (rounded + 1).long(), 1)
            n_cols = int(n_slices.max()) if n_frames is None else n_frames
            k = torch.arange(
                n_cols, device=device, dtype=torch.float64 if isinstance(stride, float) else torch.int64
            )
            starts = (k * stride).long()[None, :].expand(batch, -1)
        else:
            count = (
                torch.div(n, cfg.n_event_bins, rounding_mode="floor").double() * (1 + cfg.overlap)
            ).long()
            stride_b = (count.double() * (1 - cfg.overlap)).long()
            n_slices = torch.full((batch,), cfg.n_event_bins, dtype=torch.int64, device=device)
            n_cols = cfg.n_event_bins if n_frames is None else n_frames
            starts = torch.arange(n_cols, device=device)[None, :] * stride_b[:, None]
        ends = torch.minimum(starts + count[:, None], n[:, None])
        starts = torch.minimum(starts, n[:, None])
    in_range = torch.arange(starts.shape[1], device=device)[None, :] < n_slices[:, None]
    return torch.where(in_range, starts, 0), torch.where(in_range, ends, 0)


def to_frame_torch(
    x: torch.Tensor,
    y: torch.Tensor,
    t: torch.Tensor,
    p: torch.Tensor,
    batch_index: torch.Tensor,
    sensor_size: SensorSize | tuple[int, int, int],
    batch_size: int,
    *,
    time_window: float | None = None,
    event_count: int | None = None,
    n_time_bins: int | None = None,
    n_event_bins: int | None = None,
    overlap: float = 0,
    include_incomplete: bool = False,
    start_time: float | None = None,
    end_time: float | None = None,
    n_frames: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Frames for a whole batch of event streams on any device -> ``[T, B, P, H, W]``.

    Layout: the batch's events concatenated, as flat 1-D tensors of equal length ``N``
    (``x``, ``y``, ``t`` in µs, ``p``) plus ``batch_index`` (sample id of each event, in
    ``[0, batch_size)``). Events must be grouped by sample in increasing ``batch_index`` and
    sorted by ``t`` within a sample -- exactly what concatenating per-sample streams gives. (We
    chose this over padded ``[B, N_max]`` tensors: no padding memory, and one sample with many
    events does not inflate the others.)

    Per sample the frames equal :func:`to_frame` with the same options (all four modes).
    Samples with fewer frames than the longest one are zero-padded at the end; ``n_frames``
    fixes ``T`` instead (extra frames dropped, missing ones zero), which also avoids a
    device->host sync for the frame count.

    Returns:
        ``[T, B, P, H, W]`` tensor of ``dtype`` (float32 by default, what SNNs consume).
    """
    cfg = FrameSlicing(
        time_window, event_count, n_time_bins, n_event_bins, overlap, include_incomplete, start_time, end_time
    )
    sensor = SensorSize.coerce(sensor_size)
    if batch_size < 1 or (n_frames is not None and n_frames < 1):
        raise ValueError(
            f"to_frame_torch: batch_size and n_frames must be >= 1; found {batch_size}, {n_frames}"
        )
    tensors = {"x": x, "y": y, "t": t, "p": p, "batch_index": batch_index}
    sizes = {name: tuple(v.shape) for name, v in tensors.items()}
    if len(set(sizes.values())) != 1 or x.dim() != 1:
        raise EventFormatError(
            f"to_frame_torch: x, y, t, p, batch_index must be 1-D of one length; found {sizes}"
        )
    device = x.device
    xs, ys, ts, ps, bs = (v.to(device=device, dtype=torch.int64) for v in (x, y, t, p, batch_index))
    n_total = xs.numel()
    if n_total:
        if bs.min() < 0 or bs.max() >= batch_size:
            raise EventFormatError(
                f"to_frame_torch: batch_index must lie in [0, {batch_size}); "
                f"found [{int(bs.min())}, {int(bs.max())}]"
            )
        step_b, step_t = bs.diff(), ts.diff()
        unordered = (step_b < 0) | ((step_b == 0) & (step_t < 0))
        if unordered.any():
            i = int(torch.nonzero(unordered)[0]) + 1
            raise EventFormatError(
                "to_frame_torch: events must be grouped by increasing batch_index and sorted by t within a "
                f"sample; order breaks at index {i} ({int(unordered.sum())} place(s))"
            )
    n_events = torch.bincount(bs, minlength=batch_size)
    first = torch.cumsum(n_events, 0) - n_events
    if sensor.polarities == 1:
        if n_total:
            p_min = torch.full((batch_size,), 1 << 30, device=device).scatter_reduce(0, bs, ps, "amin")
            p_max = torch.full((batch_size,), -(1 << 30), device=device).scatter_reduce(0, bs, ps, "amax")
            if ((p_min != p_max) & (n_events > 0)).any():
                raise ValueError(
                    f"to_frame_torch: single-polarity sensor {sensor}, but a sample mixes polarities"
                )
        ps = torch.zeros_like(ps)
    for name, values, high in (
        ("x", xs, sensor.width),
        ("y", ys, sensor.height),
        ("p", ps, sensor.polarities),
    ):
        if n_total and (values.min() < 0 or values.max() >= high):
            raise EventFormatError(
                f"to_frame_torch: {name} must lie in [0, {high}) for sensor {sensor}; found "
                f"[{int(values.min())}, {int(values.max())}]"
            )

    starts, ends = _torch_slice_bounds(ts, first, n_events, cfg, n_frames)
    n_cols = starts.shape[1]
    frame_size = sensor.num_features
    lengths = (ends - starts).clamp(min=0).reshape(-1)
    total = int(lengths.sum())
    # (b, k) of every (event, frame) membership, then the event's global index.
    range_id = torch.repeat_interleave(
        torch.arange(lengths.numel(), device=device), lengths, output_size=total
    )
    first_member = torch.cumsum(lengths, 0) - lengths
    sample, frame = range_id // n_cols, range_id % n_cols
    rank = torch.arange(total, device=device) - first_member[range_id] + starts.reshape(-1)[range_id]
    event = first[sample] + rank
    pix = (ps[event] * sensor.height + ys[event]) * sensor.width + xs[event]
    flat = (frame * batch_size + sample) * frame_size + pix
    counts = torch.bincount(flat, minlength=n_cols * batch_size * frame_size)
    return counts.reshape(n_cols, batch_size, *sensor.frame_shape).to(dtype)
