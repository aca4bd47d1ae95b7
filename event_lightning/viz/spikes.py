"""Spike rasters and figure -> image conversion (for TensorBoard's ``add_image``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from event_lightning.viz.events import as_numpy

__all__ = ["figure_to_image", "plot_spike_raster"]


def plot_spike_raster(
    spikes: Any,
    *,
    sample: int = 0,
    dt_ms: float | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (6.0, 3.5),
    marker_size: float = 20.0,
) -> Figure:
    """Raster of spikes ``[T, N]`` or time-first ``[T, B, N]`` (numpy or torch; nonzero = spike).

    Args:
        spikes: spike tensor; for ``[T, B, N]`` only batch element ``sample`` is drawn.
        sample: batch index used when ``spikes`` is ``[T, B, N]``.
        dt_ms: time-step length; the x axis is in ms when given, in steps otherwise.

    Returns:
        A :class:`~matplotlib.figure.Figure`: the raster (neuron index against time) above the
        population spike count per step.
    """
    spikes = as_numpy(spikes, "plot_spike_raster")
    if spikes.ndim == 3:
        if not 0 <= sample < spikes.shape[1]:
            raise IndexError(f"plot_spike_raster: sample {sample} outside batch of {spikes.shape[1]}")
        spikes = spikes[:, sample]
    if spikes.ndim != 2:
        raise ValueError(f"plot_spike_raster: expected spikes [T, N] or [T, B, N], found shape {spikes.shape}")
    n_steps, n_neurons = spikes.shape
    step, neuron = np.nonzero(spikes)
    scale = dt_ms if dt_ms is not None else 1.0
    fig = Figure(figsize=figsize)
    raster, rate = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    raster.scatter(step * scale, neuron, s=marker_size, marker="|", c="black", linewidths=1.0)
    raster.set_ylim(-0.5, n_neurons - 0.5)
    raster.set_xlim(-0.5 * scale, (n_steps - 0.5) * scale)
    raster.set_ylabel("neuron")
    # one step patch, not a bar per time step: hundreds of bars cost more than the rest of the figure
    edges = (np.arange(n_steps + 1) - 0.5) * scale
    rate.stairs((spikes != 0).sum(axis=1), edges, fill=True, color="0.3")
    rate.set_ylabel("spikes")
    rate.set_xlabel("time (ms)" if dt_ms is not None else "time step")
    # Few ticks: building tick artists is most of the drawing time of a small figure.
    rate.xaxis.set_major_locator(MaxNLocator(5))
    raster.yaxis.set_major_locator(MaxNLocator(4, integer=True))
    rate.yaxis.set_major_locator(MaxNLocator(2, integer=True))
    if title:
        raster.set_title(title, fontsize=9)
    # fixed margins: tight_layout renders the figure once more only to measure its labels
    fig.subplots_adjust(left=0.12, right=0.98, bottom=0.14, top=0.9 if title else 0.96, hspace=0.08)
    return fig


def figure_to_image(fig: Figure, *, dpi: float | None = None) -> np.ndarray:
    """Render a figure with Agg -> uint8 ``[H, W, 3]`` RGB (``add_image(..., dataformats="HWC")``)."""
    if dpi is not None:
        fig.set_dpi(dpi)
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
