"""Several streams framed straight into one time-first batch, in numpy: :func:`batch_frame_cells`.

Per stream the counts equal :func:`~event_lightning.events.represent.frames.frame_events` (same
slice formulas, same wrap-around); a dataset that fetches a whole batch at once counts it with one
``np.add.at`` into the padded ``[T, B, P, H, W]`` batch.
"""

from __future__ import annotations

import numpy as np

from event_lightning.events.represent.slicing import FrameSlicing, _expand_ranges, _slice_bounds


def batch_frame_cells(
    t: np.ndarray, pixel: np.ndarray, counts: np.ndarray, slicing: FrameSlicing, frame_size: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Frame several streams straight into one time-first batch: where every counted event goes.

    Args:
        t: ``[N]`` timestamps (µs, integers) of ``B`` streams concatenated; each stream non-empty
            and sorted (validated by the caller).
        pixel: ``[N]`` flat ``(p, y, x)`` index of every event (as :func:`pixel_index` gives).
        counts: ``[B]`` events per stream, all > 0.
        frame_size: ``P * H * W``.

    Returns:
        ``cell [M]`` (int64): for every (frame, event) membership, the flat index into a
        ``[T_max, B, frame_size]`` batch (``T_max = n_frames.max()``), grouped by stream in order
        (an event in several overlapping frames is listed once per frame); ``n_frames [B]``; and
        the most events any one frame counts (a bound of every count: at most 255 means the
        counts fit uint8). ``np.add.at`` of int16 ones at ``cell`` into int16 zeros gives, for
        stream ``b``, exactly :func:`frame_events` in ``batch[:n_frames[b], b]`` (same slice
        formulas, same wrap-around) and zeros after it.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if len(counts) == 0 or counts.min() < 1 or int(counts.sum()) != len(t) or len(pixel) != len(t):
        raise ValueError(
            f"batch_frame_cells: expected non-empty streams whose counts sum to the {len(t)} events, "
            f"found counts {counts.tolist()} and {len(pixel)} pixels"
        )
    if _integral_back_to_back_windows(slicing):
        return _cells_of_back_to_back_windows(t, pixel, counts, slicing, frame_size)
    return _cells_stream_by_stream(t, pixel, counts, slicing, frame_size)


def _integral_back_to_back_windows(cfg: FrameSlicing) -> bool:
    """Time windows without overlap whose boundaries are whole µs counted from the first event:
    an event's frame is then ``(t - t_first) // time_window``, exactly tonic's searchsorted."""
    return (
        cfg.mode == "time_window"
        and cfg.overlap == 0
        and float(cfg.time_window).is_integer()
        and cfg.start_time is None
        and cfg.end_time is None
    )


def _cells_of_back_to_back_windows(
    t: np.ndarray, pixel: np.ndarray, counts: np.ndarray, cfg: FrameSlicing, frame_size: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`batch_frame_cells` for :func:`_integral_back_to_back_windows`, vectorised over streams
    (``np.repeat`` of per-stream values is several times cheaper than gathering them per event)."""
    first = np.cumsum(counts) - counts
    t_first, t_last = t[first], t[first + counts - 1]
    # the frame count of _slice_bounds, element-wise with the same dtypes (hence the same floats)
    ratio = (t_last - t_first - cfg.time_window) / (cfg.time_window - cfg.overlap)
    rounded = np.ceil(ratio) if cfg.include_incomplete else np.floor(ratio)
    n_frames = np.maximum((rounded + 1).astype(np.int64), 1)
    width = len(counts)
    cell = t - np.repeat(t_first, counts)
    cell //= int(cfg.time_window)  # the frame of every event
    inside = cell < np.repeat(n_frames, counts)  # events past the last whole window are not counted
    cell *= width
    cell += np.repeat(np.arange(width, dtype=np.int64), counts)  # now (frame, stream) row of [T, B]
    per_row = np.bincount(cell)  # events per row; the rows of uncounted events are masked out below
    per_row = np.pad(per_row, (0, -len(per_row) % width)).reshape(-1, width)
    counted_rows = np.arange(len(per_row))[:, None] < n_frames[None, :]
    max_frame_events = int(per_row[counted_rows].max(initial=0))
    cell *= frame_size
    cell += pixel
    return (cell if inside.all() else cell[inside]), n_frames, max_frame_events


def _cells_stream_by_stream(
    t: np.ndarray, pixel: np.ndarray, counts: np.ndarray, cfg: FrameSlicing, frame_size: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`batch_frame_cells` for any slicing: :func:`_slice_bounds` per stream."""
    cells = []
    n_frames = np.empty(len(counts), dtype=np.int64)
    offset, max_frame_events = 0, 0
    for b, count in enumerate(counts.tolist()):
        starts, ends = _slice_bounds(t[offset : offset + count], cfg)
        max_frame_events = max(max_frame_events, int(np.maximum(ends - starts, 0).max(initial=0)))
        frame, member = _expand_ranges(starts, ends)
        cell = frame * len(counts)
        cell += b
        cell *= frame_size
        cell += pixel[offset + member]
        cells.append(cell)
        n_frames[b] = len(starts)
        offset += count
    return np.concatenate(cells), n_frames, max_frame_events
