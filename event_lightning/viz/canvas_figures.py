"""The figures the generic training callbacks log, drawn as :class:`~event_lightning.viz.canvas.Canvas`.

Event panels in rows, spike rasters and confusion matrices, each a few milliseconds to draw (pixels
by numpy, text by Pillow), so that a callback can log them on a run whose epochs last under a
second. The matplotlib versions (:func:`~event_lightning.viz.plot_frame_rows`,
:func:`~event_lightning.viz.plot_spike_raster`, :func:`~event_lightning.viz.plot_confusion_matrix`)
remain the ones to restyle for a paper. Sizes below are in pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np

from event_lightning.viz.canvas import WHITE, Canvas, text_size
from event_lightning.viz.confusion import MAX_ANNOTATED_CLASSES, read_confusion
from event_lightning.viz.events import EventColours, as_numpy, coloured_rows, shrunk_rows

__all__ = ["confusion_matrix_canvas", "frame_rows_canvas", "image_rows_canvas", "spike_raster_canvas"]

PANEL_PX = (96, 160)  # smallest and largest panel width: small sensors are enlarged, large ones shrunk
TITLE_SIZE, LABEL_SIZE, SMALL_SIZE = 12, 11, 10
PAD = 6


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def _enlarge(rows: list[np.ndarray], factor: int) -> list[np.ndarray]:
    """Nearest-neighbour enlargement of panels ``[N, H, W, 3]`` by an integer ``factor``."""
    if factor < 2:
        return rows
    return [row.repeat(factor, axis=1).repeat(factor, axis=2) for row in rows]


def image_rows_canvas(
    rows: list[np.ndarray],
    *,
    row_labels: list[str],
    panel_labels: list[list[str]] | None = None,
    title: str | None = None,
) -> Canvas:
    """Rows of RGB panels ``[N_r, H, W, 3]`` in ``[0, 1]`` tiled into one canvas.

    Panels narrower than 96 px are enlarged by an integer factor ``k`` (every sensor pixel a
    ``k x k`` block); panels ``k >= 2`` times wider than 160 px are shrunk by the darkest pixel of
    each ``k x k`` block. A row's label sits
    on its left, a panel's label in a blank band above that panel only, the title on top; shorter
    rows are padded with blank panels.
    """
    if not rows or len(row_labels) != len(rows):
        raise ValueError(f"image_rows_canvas: {len(row_labels)} row labels for {len(rows)} rows")
    if len({row.shape[1:] for row in rows}) != 1 or rows[0].ndim != 4 or rows[0].shape[-1] != 3:
        raise ValueError(
            f"image_rows_canvas: expected rows [N, H, W, 3] of one (H, W), found {[r.shape for r in rows]}"
        )
    if panel_labels is not None and len(panel_labels) != len(rows):
        raise ValueError(f"image_rows_canvas: {len(panel_labels)} rows of panel labels for {len(rows)} rows")
    rows = shrunk_rows(rows, PANEL_PX[1])
    rows = _enlarge(rows, math.ceil(PANEL_PX[0] / rows[0].shape[2]))
    height, width = rows[0].shape[1:3]
    n_cols = max(len(row) for row in rows)
    gap = 4
    band = text_size("0-9", SMALL_SIZE)[1] + 4 if panel_labels else 0
    left = max(text_size(label, LABEL_SIZE)[0] for label in row_labels) + 2 * PAD
    top = text_size(title, TITLE_SIZE)[1] + 2 * PAD if title else gap
    # a panel label wider than its panel widens the column, so that it cannot run into the next label
    widest = max((text_size(label, SMALL_SIZE)[0] for labels in panel_labels or [] for label in labels), default=0)
    cell_h, cell_w = band + height + gap, max(width, widest + 2) + gap
    canvas = Canvas.blank(top + len(rows) * cell_h, left + n_cols * cell_w)
    for r, row in enumerate(rows):
        y = top + r * cell_h + band
        for c, image in enumerate(row):
            x = left + c * cell_w
            canvas.pixels[y : y + height, x : x + width] = _to_uint8(image)
        canvas.text(left - PAD, y + height / 2, row_labels[r], anchor="rm", size=LABEL_SIZE)
        for c, label in enumerate(panel_labels[r] if panel_labels else []):
            canvas.text(left + c * cell_w, y - 2, label, anchor="ld", size=SMALL_SIZE)
    if title:
        canvas.text(canvas.pixels.shape[1] / 2, PAD, title, anchor="ma", size=TITLE_SIZE)
    return canvas


def frame_rows_canvas(
    rows: list[Any],
    *,
    row_labels: list[str],
    panel_labels: list[list[str]] | None = None,
    colours: EventColours | None = None,
    title: str | None = None,
) -> Canvas:
    """Rows of event count frames ``[N_r, P, H, W]`` (numpy or torch), each panel ON/OFF coloured on its
    own scale, tiled by :func:`image_rows_canvas` (panels ``k >= 2`` times wider than 160 px have their
    counts summed over ``k x k`` blocks first)."""
    images = coloured_rows(rows, PANEL_PX[1], colours, "frame_rows_canvas")
    return image_rows_canvas(images, row_labels=row_labels, panel_labels=panel_labels, title=title)


def spike_raster_canvas(
    spikes: Any, *, dt_ms: float | None = None, title: str | None = None, width_px: int = 480
) -> Canvas:
    """Raster of spikes ``[T, N]`` (numpy or torch; nonzero = spike) above the population count per step.

    Neuron ``n`` is pixel row block ``n`` (top to bottom), step ``t`` pixel column block ``t``; each
    spike is a black block. Runs longer than ``width_px`` steps merge consecutive steps into one
    column (a spike in any of them marks it; the count strip sums them). The x axis is in ms when
    ``dt_ms`` is given, in steps otherwise.
    """
    spikes = as_numpy(spikes, "spike_raster_canvas")
    if spikes.ndim != 2:
        raise ValueError(f"spike_raster_canvas: expected spikes [T, N], found shape {spikes.shape}")
    n_steps, n_neurons = spikes.shape
    fired = spikes != 0
    merge = max(1, math.ceil(n_steps / width_px))
    n_cols = math.ceil(n_steps / merge)
    padded = np.zeros((n_cols * merge, n_neurons), dtype=bool)
    padded[:n_steps] = fired
    per_column = padded.reshape(n_cols, merge, n_neurons)
    raster = per_column.any(axis=1).T  # [N, columns]
    counts = per_column.sum(axis=(1, 2))  # spikes per column
    col_w = max(1, min(8, width_px // n_cols))
    row_h = max(1, min(8, 240 // max(n_neurons, 1)))
    plot_w, plot_h, strip_h = n_cols * col_w, n_neurons * row_h, 40

    axis_label = "time (ms)" if dt_ms is not None else "time step"
    scale = dt_ms if dt_ms is not None else 1.0
    last = f"{n_steps * scale:g}"
    left = max(text_size(f"{n_neurons - 1}", SMALL_SIZE)[0], text_size("spikes", SMALL_SIZE)[0]) + 2 * PAD
    top = (text_size(title, TITLE_SIZE)[1] + 2 * PAD if title else PAD) + text_size("neuron", SMALL_SIZE)[1] + 2
    bottom = 2 * text_size(axis_label, SMALL_SIZE)[1] + 3 * PAD
    width = left + max(plot_w, text_size(title or "", TITLE_SIZE)[0]) + text_size(last, SMALL_SIZE)[0] + PAD
    canvas = Canvas.blank(top + plot_h + PAD + strip_h + bottom, width)
    pixels = canvas.pixels
    block = np.kron(raster, np.ones((row_h, col_w), dtype=bool))
    pixels[top : top + plot_h, left : left + plot_w][block] = 0
    strip_top = top + plot_h + PAD
    heights = np.round(counts / max(int(counts.max()), 1) * strip_h).astype(np.int64)
    filled = np.arange(strip_h)[::-1, None] < heights.repeat(col_w)[None, :]  # [strip_h, plot_w], from the bottom
    pixels[strip_top : strip_top + strip_h, left : left + plot_w][filled] = 77
    for y0, h in ((top, plot_h), (strip_top, strip_h)):  # a grey frame around each plot
        pixels[[y0 - 1, y0 + h], left - 1 : left + plot_w + 1] = 160
        pixels[y0 - 1 : y0 + h + 1, [left - 1, left + plot_w]] = 160

    if title:
        canvas.text(width / 2, PAD, title, anchor="ma", size=TITLE_SIZE)
    canvas.text(left, top - 2, "neuron", anchor="ld", size=SMALL_SIZE)
    canvas.text(left - PAD, top + row_h / 2, "0", anchor="rm", size=SMALL_SIZE)
    canvas.text(left - PAD, top + plot_h - row_h / 2, f"{n_neurons - 1}", anchor="rm", size=SMALL_SIZE)
    canvas.text(left - PAD, strip_top, f"{int(counts.max())}", anchor="ra", size=SMALL_SIZE)
    canvas.text(left - PAD, strip_top + strip_h, "spikes", anchor="rd", size=SMALL_SIZE)
    axis_y = strip_top + strip_h + PAD
    canvas.text(left, axis_y, "0", anchor="la", size=SMALL_SIZE)
    canvas.text(left + plot_w, axis_y, last, anchor="ma", size=SMALL_SIZE)
    label_y = axis_y + text_size("0", SMALL_SIZE)[1] + PAD
    canvas.text(left + plot_w / 2, label_y, axis_label, anchor="ma", size=SMALL_SIZE)
    return canvas


def confusion_matrix_canvas(
    counts: Any, *, class_names: Sequence[str] | None = None, title: str | None = None, size_px: int = 320
) -> Canvas:
    """A confusion matrix ``counts[label, prediction]`` ``[C, C]`` (numpy or torch) as a canvas.

    Each row is coloured by its share of that label's samples (white 0 to dark blue 1, matplotlib's
    ``Blues``; recall on the diagonal), so rare classes read as clearly as common ones; with up to
    12 classes the cells also show the counts. Labels run down the left, predictions across the
    top; the title ends with the overall accuracy and the number of samples.
    """
    matrix = read_confusion(counts, class_names, "confusion_matrix_canvas")
    counts, shares, names, n_classes = matrix.counts, matrix.shares, matrix.names, len(matrix.counts)
    annotated = n_classes <= MAX_ANNOTATED_CLASSES
    cell = max(6, min(64, size_px // max(n_classes, 1)))
    heading = f"accuracy {matrix.accuracy:.3f} on {matrix.total} samples"
    heading = f"{title}: {heading}" if title else heading

    # Prediction names stand above their columns when they fit; otherwise the columns are numbered
    # (every m-th number, as many as fit) and the rows say which name each number is.
    names_fit = max(text_size(name, SMALL_SIZE)[0] for name in names) <= cell - 2
    column_names = names if names_fit else [str(k) for k in range(n_classes)]
    row_names = names if names_fit or class_names is None else [f"{k}: {name}" for k, name in enumerate(names)]
    every = max(1, math.ceil((max(text_size(name, SMALL_SIZE)[0] for name in column_names) + 2) / cell))
    name_h = text_size("Ag", SMALL_SIZE)[1]
    left = max(text_size(name, SMALL_SIZE)[0] for name in row_names) + text_size("label", SMALL_SIZE)[0] + 3 * PAD
    top = text_size(heading, TITLE_SIZE)[1] + 2 * PAD + name_h + text_size("prediction", SMALL_SIZE)[1] + 2 * PAD
    side = n_classes * cell
    canvas = Canvas.blank(top + side + PAD, max(left + side + PAD, text_size(heading, TITLE_SIZE)[0] + 2 * PAD))
    colours = matplotlib.colormaps["Blues"](shares)[..., :3]
    canvas.pixels[top : top + side, left : left + side] = _to_uint8(colours).repeat(cell, axis=0).repeat(cell, axis=1)

    canvas.text(canvas.pixels.shape[1] / 2, PAD, heading, anchor="ma", size=TITLE_SIZE)
    canvas.text(left + side / 2, top - name_h - 2 * PAD, "prediction", anchor="md", size=SMALL_SIZE)
    canvas.text(PAD, top + side / 2, "label", anchor="lm", size=SMALL_SIZE)
    for k in range(n_classes):
        centre = k * cell + cell / 2
        if k % every == 0:
            canvas.text(left + centre, top - PAD, column_names[k], anchor="md", size=SMALL_SIZE)
        canvas.text(left - PAD, top + centre, row_names[k], anchor="rm", size=SMALL_SIZE)
    if annotated:
        for (row, column), count in np.ndenumerate(counts):
            if count:
                colour = WHITE if shares[row, column] > 0.5 else (0, 0, 0)
                x, y = left + column * cell + cell / 2, top + row * cell + cell / 2
                canvas.text(x, y, str(count), anchor="mm", size=SMALL_SIZE, colour=colour)
    return canvas
