"""``python -m event_lightning.data inspect``: split sizes and per-sample statistics of a dataset.

:func:`inspect_dataset` reports split sizes and, where the raw events are reachable (the
:data:`~event_lightning.data.registry.DATASETS` entry's ``raw_events``), events per sample and
event rate (events/s); otherwise it reports what it measured on the decoded sample tensors and
says so. It can save a picture of the first training sample (the only file it writes).

It only reads: no download, no stand-in written (``--synthetic`` reads the stand-in that
``prepare --synthetic`` or a training run wrote, and lists those present when it is missing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

from event_lightning.data.preparation import setup_datamodule, split_datasets
from event_lightning.data.registry import get_entry
from event_lightning.events.core import SensorSize

__all__ = ["EventStats", "event_statistics", "inspect_dataset"]


@dataclass(frozen=True)
class EventStats:
    """Per-sample statistics over ``n_samples`` raw recordings."""

    n_samples: int
    events: np.ndarray  # [n_samples] events per sample
    rate: np.ndarray  # [n_samples] events / s over each recording's span (last t - first t, µs)


def event_statistics(samples: Sequence[tuple[np.ndarray, int]], max_samples: int) -> EventStats:
    """Events per sample and event rate (events/s) of the first ``max_samples`` recordings."""
    n = min(len(samples), max_samples)
    counts = np.zeros(n, dtype=np.int64)
    spans_us = np.zeros(n, dtype=np.float64)
    for i in range(n):  # one recording at a time; the per-event work is vectorised numpy
        events = samples[i][0]
        counts[i] = len(events)
        if len(events) > 1:
            t = np.asarray(events["t"], dtype=np.float64)
            spans_us[i] = t.max() - t.min()
    rate = np.divide(counts, spans_us * 1e-6, out=np.zeros(n), where=spans_us > 0)
    return EventStats(n, counts, rate)


def _summary(values: np.ndarray) -> str:
    return f"min {np.min(values):.4g}, median {np.median(values):.4g}, max {np.max(values):.4g}"


def _first_tensor(sample: Any) -> torch.Tensor | None:
    if isinstance(sample, torch.Tensor):
        return sample
    if isinstance(sample, np.ndarray) and sample.dtype.kind in "biuf":
        return torch.as_tensor(sample)
    if isinstance(sample, (tuple, list)):
        for item in sample:
            found = _first_tensor(item)
            if found is not None:
                return found
    if isinstance(sample, dict):
        return _first_tensor(list(sample.values()))
    return None


def _as_frames(tensor: torch.Tensor, max_panels: int) -> np.ndarray:
    """A decoded sample tensor as ``[T, P, H, W]`` (P in 1, 2) for :func:`plot_frames`."""
    array = tensor.detach().float().cpu().numpy()
    if array.ndim == 2:
        array = array[None, None]
    elif array.ndim == 3:
        array = array[None]
    elif array.ndim > 4:
        array = array.reshape(-1, *array.shape[-3:])
    if array.shape[1] not in (1, 2):
        array = np.abs(array).sum(axis=1, keepdims=True)
    return np.abs(array[:max_panels])


def inspect_dataset(
    name: str,
    root: str | Path,
    synthetic: bool = False,
    picture: str | Path | None = None,
    max_samples: int = 200,
    out: TextIO | None = None,
) -> dict[str, Any]:
    """Print split sizes and per-sample statistics; with ``picture`` save a PNG of train sample 0.

    Returns a dict with ``sizes`` and, for event datasets with a raw view, ``events`` and ``rate``
    (:class:`EventStats` arrays) or, otherwise, ``shape`` and ``nonzero`` of decoded samples.
    """
    entry = get_entry(name)
    dm = setup_datamodule(name, Path(root), synthetic, prepare=False)  # read-only: nothing written
    splits = split_datasets(dm)
    sizes = {split: len(dataset) for split, dataset in splits.items()}
    result: dict[str, Any] = {"sizes": sizes}
    print(f"{name} ({'synthetic stand-in' if synthetic else 'real data'}) under {root}", file=out)
    for split, size in sizes.items():
        print(f"  {split}: {size} samples", file=out)
    sensor: SensorSize | None = entry.raw_sensor or getattr(dm, "sensor_size", None)
    figure = None
    if entry.raw_events is not None:
        raw = entry.raw_events(dm, True)
        stats = event_statistics(raw, max_samples)
        result.update(events=stats.events, rate=stats.rate)
        print(f"  raw events of the first {stats.n_samples} train recordings:", file=out)
        print(f"    events per sample: {_summary(stats.events)}", file=out)
        print(f"    event rate (events/s over each recording's span): {_summary(stats.rate)}", file=out)
        if picture is not None:
            from event_lightning.viz import plot_event_grid

            events, label = raw[0]
            figure = plot_event_grid(events, sensor, n_panels=8, title=f"{name} train[0], label {label}")
    else:
        train = splits["train"]
        n = min(len(train), max_samples)
        tensors = [_first_tensor(train[i]) for i in range(n)]
        tensors = [t for t in tensors if t is not None]
        if not tensors:
            raise ValueError(f"{name}: train samples hold no array to measure (first sample: {type(train[0])})")
        nonzero = np.array([int(torch.count_nonzero(t)) for t in tensors], dtype=np.int64)
        shape = tuple(tensors[0].shape)
        result.update(shape=shape, nonzero=nonzero)
        print(
            f"  no raw-event view for {name}: measured the decoded input tensor of the first {len(tensors)} "
            f"train samples (not raw events)",
            file=out,
        )
        print(f"    sample tensor shape: {list(shape)}", file=out)
        print(f"    nonzero entries per sample: {_summary(nonzero)}", file=out)
        if picture is not None and tensors[0].ndim < 2:
            print(f"  no picture: the decoded sample is {tensors[0].ndim}-D, not an image", file=out)
        elif picture is not None:
            from event_lightning.viz import plot_frames

            figure = plot_frames(_as_frames(tensors[0], 8), suptitle=f"{name} train[0] (decoded input)")
    if figure is not None:
        Path(picture).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(picture)
        print(f"  picture of train sample 0 saved to {picture}", file=out)
    return result
