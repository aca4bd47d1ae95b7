"""Confusion matrix of a classifier: rows are labels, columns predictions, cells normalised per label."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from event_lightning.viz.events import as_numpy

__all__ = ["plot_confusion_matrix"]

# Above this many classes the cells are too small for their counts to be read.
MAX_ANNOTATED_CLASSES = 12


@dataclass(frozen=True)
class ConfusionCounts:
    """A checked confusion matrix and what its drawings show.

    Attributes:
        counts: ``[C, C]`` int64, ``counts[label, prediction]``.
        shares: ``[C, C]`` float, each row over its label's samples (0 for a label with none).
        total: samples counted; accuracy: the diagonal's share of them (0.0 without samples).
        names: the class names (the indices as text without ``class_names``).
    """

    counts: np.ndarray
    shares: np.ndarray
    total: int
    accuracy: float
    names: list[str]


def read_confusion(counts: Any, class_names: Sequence[str] | None, name: str) -> ConfusionCounts:
    """Check ``counts[label, prediction]`` ``[C, C]`` (numpy or torch) and its class names; errors name ``name``."""
    counts = as_numpy(counts, name).astype(np.int64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"{name}: expected counts [C, C], found shape {counts.shape}")
    n_classes = len(counts)
    if class_names is not None and len(class_names) != n_classes:
        raise ValueError(f"{name}: {len(class_names)} class names for {n_classes} classes")
    per_label = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, per_label, out=np.zeros(counts.shape), where=per_label > 0)
    total = int(counts.sum())
    accuracy = float(np.trace(counts) / total) if total else 0.0
    names = [str(k) for k in range(n_classes)] if class_names is None else [str(n) for n in class_names]
    return ConfusionCounts(counts, shares, total, accuracy, names)


def plot_confusion_matrix(
    counts: Any,
    *,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
    inches: float = 4.5,
) -> Figure:
    """Draw a confusion matrix ``counts[label, prediction]`` ``[C, C]`` (numpy or torch).

    Each row is coloured by its share of that label's samples (white 0 to dark blue 1; recall on
    the diagonal), so rare classes read as clearly as common ones; with up to 12 classes the cells
    also show the counts. The title ends with the overall accuracy and the number of samples.
    """
    matrix = read_confusion(counts, class_names, "plot_confusion_matrix")
    counts, shares, names, n_classes = matrix.counts, matrix.shares, matrix.names, len(matrix.counts)
    fig = Figure(figsize=(inches, inches))
    # fixed margins for the tick labels and title: tight_layout would render the figure twice
    fig.subplots_adjust(left=0.15, right=0.97, bottom=0.13, top=0.92)
    ax = fig.add_subplot()
    ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    # Class names as plain text beside the matrix, not tick labels: a tick is several artists and
    # building them cost more than the rest of the figure.
    ax.set_xticks([])
    ax.set_yticks([])
    fontsize = 8 if n_classes <= MAX_ANNOTATED_CLASSES else 6
    below, left = ax.get_xaxis_transform(), ax.get_yaxis_transform()
    for k, name in enumerate(names):
        ax.text(
            k,
            -0.01,
            name,
            transform=below,
            ha="center",
            va="top",
            fontsize=fontsize,
            rotation=90 if n_classes > MAX_ANNOTATED_CLASSES else 0,
        )
        ax.text(-0.01, k, name, transform=left, ha="right", va="center", fontsize=fontsize)
    ax.set_xlabel("prediction", labelpad=14)
    ax.set_ylabel("label", labelpad=14)
    if n_classes <= MAX_ANNOTATED_CLASSES:
        for (row, column), count in np.ndenumerate(counts):
            if count:
                colour = "white" if shares[row, column] > 0.5 else "black"
                ax.text(column, row, str(count), ha="center", va="center", fontsize=7, color=colour)
    heading = f"accuracy {matrix.accuracy:.3f} on {matrix.total} samples"
    ax.set_title(f"{title}: {heading}" if title else heading, fontsize=9)
    return fig
