"""Event plots: ON/OFF count images per time slice, GIF animations, frame and voxel-grid panels.

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot global state), so
they render headless and can be handed to :func:`event_lightning.viz.figure_to_image`.
Binning always goes through :mod:`event_lightning.events.represent`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.animation import PillowWriter
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from event_lightning.events.core import SensorSize
from event_lightning.events.represent.frames import to_frame
from event_lightning.events.represent.voxel import voxel_grid

__all__ = [
    "EventColours",
    "animate_events",
    "events_to_rgb",
    "plot_event_grid",
    "plot_event_voxels",
    "plot_frame_rows",
    "plot_frames",
    "plot_image_rows",
    "plot_voxel_grid",
]


@dataclass(frozen=True)
class EventColours:
    """RGB colours in ``[0, 1]`` for event images: ON, OFF and the empty background."""

    on: tuple[float, float, float] = (0.85, 0.10, 0.10)
    off: tuple[float, float, float] = (0.10, 0.35, 0.85)
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)


def as_numpy(array: Any, name: str) -> np.ndarray:
    """A numpy copy of a numpy array or a (possibly GPU, grad-tracking) torch tensor."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array or torch tensor, found {type(array).__name__}")
    return array


def events_to_rgb(frame: Any, *, scale: float | None = None, colours: EventColours | None = None) -> np.ndarray:
    """Colour one count frame ``(P, H, W)`` -> float ``(H, W, 3)`` in ``[0, 1]``.

    A pixel's hue is the ON/OFF mix of its counts (pure ON colour when only ON events fell there)
    and its opacity over the background is ``min(1, (on + off) / scale)``; ``scale`` defaults to
    the frame's largest per-pixel total so the busiest pixel is fully coloured. With ``P == 1``
    every event counts as ON.
    """
    colours = colours or EventColours()
    counts = as_numpy(frame, "events_to_rgb").astype(np.float64)
    if counts.ndim != 3 or counts.shape[0] not in (1, 2):
        raise ValueError(f"events_to_rgb: expected a (P, H, W) count frame with P in (1, 2), found {counts.shape}")
    on = counts[-1]
    off = counts[0] if counts.shape[0] == 2 else np.zeros_like(on)
    total = on + off
    if scale is None:
        scale = float(total.max())
    alpha = np.clip(total / scale, 0.0, 1.0) if scale > 0 else np.zeros_like(total)
    on_share = np.divide(on, total, out=np.zeros_like(total), where=total > 0)[..., None]
    colour = on_share * np.array(colours.on) + (1.0 - on_share) * np.array(colours.off)
    return (1.0 - alpha[..., None]) * np.array(colours.background) + alpha[..., None] * colour


def _grid_axes(fig: Figure, n_panels: int, n_cols: int | None) -> list[Axes]:
    n_cols = min(n_panels, n_cols or math.ceil(math.sqrt(n_panels)))
    n_rows = math.ceil(n_panels / n_cols)
    axes = [fig.add_subplot(n_rows, n_cols, k + 1) for k in range(n_panels)]
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    return axes


def _panel_size(height: int, width: int, n_panels: int, n_cols: int | None, panel_inches: float) -> tuple[float, float]:
    n_cols = min(n_panels, n_cols or math.ceil(math.sqrt(n_panels)))
    n_rows = math.ceil(n_panels / n_cols)
    aspect = height / width
    return panel_inches * n_cols, panel_inches * aspect * n_rows + 0.4


def plot_frames(
    frames: Any,
    *,
    titles: list[str] | None = None,
    n_cols: int | None = None,
    panel_inches: float = 2.0,
    colours: EventColours | None = None,
    shared_scale: bool = True,
    suptitle: str | None = None,
) -> Figure:
    """One panel per time step of event count frames ``[T, P, H, W]`` (numpy or torch), ON/OFF coloured.

    ``shared_scale`` uses one colour scale (the busiest pixel over all frames) so panels compare.
    """
    frames = as_numpy(frames, "plot_frames")
    if frames.ndim != 4 or frames.shape[1] not in (1, 2):
        raise ValueError(f"plot_frames: expected frames [T, P, H, W] with P in (1, 2), found {frames.shape}")
    if titles is not None and len(titles) != len(frames):
        raise ValueError(f"plot_frames: {len(titles)} titles for {len(frames)} frames")
    scale = float(frames.sum(axis=1).max()) if shared_scale else None
    fig = Figure(figsize=_panel_size(frames.shape[2], frames.shape[3], len(frames), n_cols, panel_inches))
    for k, ax in enumerate(_grid_axes(fig, len(frames), n_cols)):
        ax.imshow(events_to_rgb(frames[k], scale=scale, colours=colours), interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[k], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_frame_rows(
    rows: list[Any],
    *,
    row_labels: list[str],
    panel_labels: list[list[str]] | None = None,
    panel_inches: float = 1.2,
    colours: EventColours | None = None,
    title: str | None = None,
) -> Figure:
    """Rows of event count frames ``[N_r, P, H, W]`` (one row per sample) tiled into one image.

    Each panel is coloured on its own scale (the busiest pixel of that panel), then drawn with
    :func:`plot_image_rows`.

    Args:
        rows: per sample, its panels ``[N_r, P, H, W]`` (numpy or torch), all of one ``(P, H, W)``.
        row_labels: one label per row (e.g. ``"#0 label 3, pred 3"``).
        panel_labels: per row, one label per panel (e.g. ``"steps 0-12"``), or None.
        panel_inches: width of one panel in inches.
        title: the figure's title.
    """
    images = coloured_rows(rows, int(panel_inches * Figure().dpi), colours, "plot_frame_rows")
    return plot_image_rows(
        images, row_labels=row_labels, panel_labels=panel_labels, panel_inches=panel_inches, title=title
    )


def coloured_rows(rows: list[Any], width_px: int, colours: EventColours | None, name: str) -> list[np.ndarray]:
    """Rows of count frames ``[N_r, P, H, W]`` -> rows of RGB panels ``[N_r, H', W', 3]`` in ``[0, 1]``.

    Each panel is coloured on its own scale (its busiest pixel). Counts are first summed over
    ``k x k`` pixel blocks when a panel is ``k`` times wider than the ``width_px`` pixels it is
    shown on: colouring then works on the pixels shown, and no event is dropped.
    """
    panels = [as_numpy(row, name) for row in rows]
    if len({row.shape[1:] for row in panels}) > 1 or any(row.ndim != 4 or row.shape[1] not in (1, 2) for row in panels):
        raise ValueError(f"{name}: expected rows [N, P, H, W] of one (P, H, W), found {[r.shape for r in panels]}")
    k = _shrink_factor(panels[0].shape[3], width_px)
    if k >= 2:
        panels = [_block_reduce(row, k, np.sum) for row in panels]
    return [np.stack([events_to_rgb(frame, colours=colours) for frame in row]) for row in panels]


def _shrink_factor(width: int, width_px: int) -> int:
    """How many pixels of a panel ``width`` pixels wide fall on one of the ``width_px`` pixels it is shown on."""
    return int(width // width_px)


def _block_reduce(images: np.ndarray, k: int, reduce: Any) -> np.ndarray:
    """``[N, C, H, W]`` -> ``[N, C, H // k, W // k]``, ``reduce`` over each ``k x k`` block."""
    n, channels, height, width = images.shape
    trimmed = images[..., : height - height % k, : width - width % k]
    return reduce(trimmed.reshape(n, channels, height // k, k, width // k, k), axis=(3, 5))


def shrunk_rows(rows: list[np.ndarray], width_px: int) -> list[np.ndarray]:
    """RGB panels ``[N, H, W, 3]`` much wider than the ``width_px`` pixels they are shown on, shrunk by the
    darkest pixel of each ``k x k`` block (events stay visible on the white background)."""
    k = _shrink_factor(rows[0].shape[2], width_px)
    if k < 2:
        return rows
    return [_block_reduce(row.transpose(0, 3, 1, 2), k, np.min).transpose(0, 2, 3, 1) for row in rows]


def plot_image_rows(
    rows: list[np.ndarray],
    *,
    row_labels: list[str],
    panel_labels: list[list[str]] | None = None,
    panel_inches: float = 1.2,
    title: str | None = None,
) -> Figure:
    """Rows of RGB images ``[N_r, H, W, 3]`` in ``[0, 1]`` tiled into one mosaic on one axes.

    A row's label sits beside it as a tick label and a panel's label is written in a blank band
    above that panel only: no text can run into a neighbouring panel or cover the image, however
    many panels a row has. Shorter rows are padded with blank panels. One axes and one image
    (uint8) keep the drawing cheap enough for a figure logged every few epochs.
    """
    if not rows or len(row_labels) != len(rows):
        raise ValueError(f"plot_image_rows: {len(row_labels)} row labels for {len(rows)} rows")
    if len({row.shape[1:] for row in rows}) != 1 or rows[0].ndim != 4 or rows[0].shape[-1] != 3:
        raise ValueError(f"plot_image_rows: expected rows [N, H, W, 3] of one (H, W), found {[r.shape for r in rows]}")
    # Panels much wider than their place on the figure are shrunk here by the darkest pixel of each
    # k x k block (events stay visible on the white background); left to matplotlib's resampling,
    # a 240 x 180 sensor costs more than all the rest of the figure.
    rows = shrunk_rows(rows, int(panel_inches * Figure().dpi))
    height, width = rows[0].shape[1:3]
    n_cols = max(len(row) for row in rows)
    gap = max(1, min(height, width) // 16)  # white lines between panels
    band = math.ceil(0.2 * height) if panel_labels else 0  # blank strip above each panel for its label
    cell_h, cell_w = band + height + gap, width + gap
    mosaic = np.full((len(rows) * cell_h + gap, n_cols * cell_w + gap, 3), 255, dtype=np.uint8)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            top, left = gap + r * cell_h + band, gap + c * cell_w
            mosaic[top : top + height, left : left + width] = np.round(np.clip(image, 0.0, 1.0) * 255)
    rows_inches = panel_inches * (band + height) / width * len(rows)
    fig_width, fig_height = panel_inches * n_cols + 1.0, rows_inches + 0.4
    fig = Figure(figsize=(fig_width, fig_height))
    # Fixed margins (row labels left, title on top) instead of tight_layout, which renders the
    # figure once more to measure its text: half the cost of a figure logged every epoch.
    fig.subplots_adjust(
        left=0.9 / fig_width, right=1 - 0.1 / fig_width, bottom=0.05 / fig_height, top=1 - 0.3 / fig_height
    )
    ax = fig.add_subplot()
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks(gap + np.arange(len(rows)) * cell_h + band + height / 2, row_labels, fontsize=8)
    ax.tick_params(length=0)
    for r, labels in enumerate(panel_labels or []):
        for c, label in enumerate(labels):
            ax.text(gap + c * cell_w, gap + r * cell_h + band / 2, label, fontsize=6, va="center", ha="left")
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def plot_event_grid(
    events: np.ndarray,
    sensor_size: SensorSize | tuple[int, int, int],
    n_panels: int = 8,
    *,
    n_cols: int | None = None,
    panel_inches: float = 2.0,
    colours: EventColours | None = None,
    title: str | None = None,
) -> Figure:
    """Event counts in ``n_panels`` equal time slices (``to_frame(n_time_bins=n_panels)``), ON/OFF coloured.

    Args:
        events: one sample (:data:`EVENT_DTYPE` or any structured array with x, y, t, p), t in µs.
        sensor_size: :class:`SensorSize` or tonic's ``(W, H, P)``.
        n_panels: number of time slices; each panel is titled with its window in ms.

    Returns:
        A :class:`~matplotlib.figure.Figure` with ``n_panels`` image axes.
    """
    frames = to_frame(events, sensor_size, n_time_bins=n_panels)
    titles = None
    if len(events):
        # Window length as to_frame's n_time_bins mode defines it: (t_last - t_first) // T µs.
        t0 = int(events["t"][0])
        window = (int(events["t"][-1]) - t0) // n_panels
        titles = [f"{(t0 + k * window) / 1e3:.1f}-{(t0 + (k + 1) * window) / 1e3:.1f} ms" for k in range(n_panels)]
    return plot_frames(frames, titles=titles, n_cols=n_cols, panel_inches=panel_inches, colours=colours, suptitle=title)


def plot_voxel_grid(
    voxels: Any,
    *,
    n_cols: int | None = None,
    panel_inches: float = 2.0,
    cmap: str = "RdBu_r",
    suptitle: str | None = None,
) -> Figure:
    """One panel per bin of a voxel grid ``[T, 1, H, W]`` or ``[T, H, W]`` with a diverging colormap.

    The colour range is symmetric (``±max|v|`` over all bins) so zero is the colormap's centre:
    positive (ON-dominated) red, negative (OFF-dominated) blue with the default ``RdBu_r``.
    """
    voxels = as_numpy(voxels, "plot_voxel_grid")
    if voxels.ndim == 4 and voxels.shape[1] == 1:
        voxels = voxels[:, 0]
    if voxels.ndim != 3:
        raise ValueError(f"plot_voxel_grid: expected voxels [T, 1, H, W] or [T, H, W], found {voxels.shape}")
    limit = float(np.abs(voxels).max()) or 1.0
    fig = Figure(figsize=_panel_size(voxels.shape[1], voxels.shape[2], len(voxels), n_cols, panel_inches))
    axes = _grid_axes(fig, len(voxels), n_cols)
    for k, ax in enumerate(axes):
        image = ax.imshow(voxels[k], cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_title(f"bin {k}", fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    fig.colorbar(image, ax=axes, shrink=0.8)
    return fig


def plot_event_voxels(
    events: np.ndarray, sensor_size: SensorSize | tuple[int, int, int], n_time_bins: int = 5, **kwargs: Any
) -> Figure:
    """:func:`plot_voxel_grid` of ``voxel_grid(events, sensor_size, n_time_bins)``."""
    return plot_voxel_grid(voxel_grid(events, sensor_size, n_time_bins), **kwargs)


def animate_events(
    events: np.ndarray,
    sensor_size: SensorSize | tuple[int, int, int],
    path: str | Path,
    frame_ms: float = 10.0,
    *,
    fps: int = 10,
    inches: float = 3.0,
    dpi: int = 80,
    colours: EventColours | None = None,
) -> Path:
    """Write a GIF with one frame per ``frame_ms`` window of events (Pillow writer).

    Frames are ``to_frame(time_window=frame_ms * 1000, include_incomplete=True)``, so the last,
    shorter window is kept; every frame shares the busiest pixel's colour scale.

    Returns:
        The GIF's path. Its frame count is the number of windows (Pillow merges consecutive frames
        that are pixel-identical, e.g. runs of empty windows, into one longer frame).
    """
    if frame_ms <= 0:
        raise ValueError(f"animate_events: frame_ms must be positive, found {frame_ms!r}")
    sensor = SensorSize.coerce(sensor_size)
    frames = to_frame(events, sensor, time_window=frame_ms * 1000.0, include_incomplete=True)
    scale = float(frames.sum(axis=1).max())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(inches, inches * sensor.height / sensor.width + 0.3))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_xticks([])
    ax.set_yticks([])
    t0 = float(events["t"][0]) if len(events) else 0.0
    image = ax.imshow(events_to_rgb(frames[0], scale=scale, colours=colours), interpolation="nearest")
    title = ax.set_title("", fontsize=8)
    fig.tight_layout()
    writer = PillowWriter(fps=fps)
    with writer.saving(fig, str(path), dpi):
        for k, frame in enumerate(frames):
            image.set_data(events_to_rgb(frame, scale=scale, colours=colours))
            title.set_text(f"{(t0 / 1e3 + k * frame_ms):.1f} ms")
            writer.grab_frame()
    return path
