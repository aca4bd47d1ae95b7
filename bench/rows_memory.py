"""Row 6, first half: bytes per DHP19 training sample, ours against the reference's sample layout.

The reference (uzh-rpg/hybrid_ann_snn, hybrid_pose spec §6 and pitfall 10) returns per training
window of ``T`` time steps on an ``H x W`` crop:

===================== ======================= =========== =====================================
field                 shape                   dtype       note
===================== ======================= =========== =====================================
event_representation  (T, 2, H, W)            float32     stacked histogram (spec §1)
label                 (L, 13, H, W)           float64     dense one-hot maps (pitfall 10)
landmarks             (2, L, 13)              float64     [u; v], NaN where invalid
label_3d              (L, 3, 13)              float64     Vicon mm
cnn_input             (F, 2 * bins, H, W)     float32     hybrid only: F = 2 frames in training
ms_start, ms_end      scalars                 int64       collated Python ints
===================== ======================= =========== =====================================

``L`` = labels in the window (one per 10 ms; ``L = T`` at 10 ms bins). ``cnn_label`` and
``cnn_landmarks`` are left out because the spec does not give their layout: the reference figure
is a lower bound. Our side is measured, not computed: what the DataLoader carries for one sample
of :class:`~event_lightning.data.datasets.dhp19.SyntheticDHP19DataModule` at the same window
configuration -- the count stack as sparse entries (int32 flat index + uint8/int16 count per
non-zero cell, :mod:`event_lightning.data.loading.sparse_counts`) and every label tensor -- and the size of
that sample's cache file. The dense float32 frames the model takes are built from the sparse
entries on the device (``DHP19DataModule.on_after_batch_transfer``); their size is in the note.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.measure import BenchConfig
from bench.results import Results, Row
from bench.table import format_bytes
from event_lightning.data.loading.sparse_counts import SparseCounts

GROUP = "dhp19_mem"
FLOAT32, FLOAT64, INT64 = 4, 8, 8


@dataclass(frozen=True)
class PoseWindowLayout:
    """One DHP19 training window as the reference stores it.

    Attributes:
        n_steps: time steps ``T`` (window / bin length: 100 ms / 10 ms = 10).
        n_labels: labels ``L`` in the window (one per 10 ms).
        height, width: the crop (256 x 256 in the reference).
        cnn_bins: time bins of a CNN frame (2 * bins channels).
        cnn_frames: CNN frames per sample (2 for the hybrid in training, 0 for the pure SNN).
        n_joints: 13.
    """

    n_steps: int = 10
    n_labels: int = 10
    height: int = 256
    width: int = 256
    cnn_bins: int = 10
    cnn_frames: int = 2
    n_joints: int = 13


def reference_sample_bytes(layout: PoseWindowLayout) -> dict[str, int]:
    """Bytes of each field of one reference training sample (module docstring table)."""
    pixels = layout.height * layout.width
    joints, labels = layout.n_joints, layout.n_labels
    sizes = {
        "event_representation": layout.n_steps * 2 * pixels * FLOAT32,
        "label": labels * joints * pixels * FLOAT64,
        "landmarks": 2 * labels * joints * FLOAT64,
        "label_3d": labels * 3 * joints * FLOAT64,
        "ms_start": INT64,
        "ms_end": INT64,
    }
    if layout.cnn_frames:
        sizes["cnn_input"] = layout.cnn_frames * 2 * layout.cnn_bins * pixels * FLOAT32
    return sizes


def value_bytes(value: Any) -> int:
    """Bytes ``value`` takes in a collated batch: tensors and arrays as stored, sparse count stacks
    as their index, count and entry-count tensors, Python numbers as the 8-byte tensors
    ``default_collate`` makes of them."""
    if isinstance(value, SparseCounts):
        return value.nbytes
    if isinstance(value, torch.Tensor):
        return value.element_size() * value.numel()
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, bool | int | float | np.number):
        return 8
    raise TypeError(f"bench: cannot size a sample value of type {type(value).__name__}")


LAYOUT_KEYS = ("count_parts",)
"""Entries without tensors: the names and channel counts of the count stack, one per batch."""


def sample_bytes(sample: dict[str, Any]) -> dict[str, int]:
    """Bytes of every entry of one sample dict (the layout entries, no tensors, left out)."""
    return {key: value_bytes(value) for key, value in sample.items() if key not in LAYOUT_KEYS}


COORDINATE_LABELS = ("landmarks", "cnn_landmarks")
"""Our 2D joint labels: what replaces the reference's dense ``label`` maps."""


@dataclass
class SampleMeasurement:
    """Bytes per entry of one of our samples as the DataLoader carries it, the size of its cache
    file, and its count stack: non-zero cells and the bytes of the float32 tensors built on the device."""

    entries: dict[str, int]
    cache_file_bytes: int
    nnz: int
    dense_bytes: int

    @property
    def total(self) -> int:
        return sum(self.entries.values())

    @property
    def label_bytes(self) -> int:
        return sum(self.entries.get(key, 0) for key in COORDINATE_LABELS)


def measure_dhp19_sample(datamodule: Any, index: int = 0) -> SampleMeasurement:
    """Bytes of training sample ``index`` of a DHP19 DataModule that has a ``cache_dir``."""
    dataset = datamodule.split("train")
    if dataset.cache is None:
        raise ValueError("bench: measure_dhp19_sample needs a DHP19 DataModule with cache_dir set")
    sample = dataset[index]  # builds and stores the cache file on a miss
    counts = sample["counts"]
    return SampleMeasurement(
        sample_bytes(sample),
        dataset.cache.path(index).stat().st_size,
        int(counts.nnz.sum()),
        counts.dense_nbytes,
    )


def dhp19_datamodule(root: str | Path, mode: str, downsample: int = 1, duration_ms: int = 400) -> Any:
    """A one-recording synthetic DHP19 DataModule (camera 3, subject 1) at the reference's window
    configuration: 100 ms windows every 100 ms, 10 ms bins, 10-bin CNN frames.

    The CNN frames take 500 events instead of 7500 (the stand-in is short); their size does not
    depend on the event count.
    """
    from event_lightning.data.datasets.dhp19 import SyntheticDHP19DataModule

    return SyntheticDHP19DataModule(
        root=str(Path(root) / "stand-in"),
        subjects=[1],
        movements_per_subject=1,
        duration_ms=duration_ms,
        synthetic_cameras=[3],
        camera_views=[3],
        mode=mode,
        window_ms=100,
        step_ms=100,
        bin_ms=10,
        cnn_event_count=500,
        cnn_bins=10,
        downsample=downsample,
        train_subjects=[1],
        cache_dir=str(Path(root) / f"cache-{mode}-{downsample}"),
    )


def layout_of(datamodule: Any) -> PoseWindowLayout:
    """The reference layout for the window configuration of ``datamodule``'s training split."""
    sampling, size = datamodule.train_sampling, datamodule.crop.sensor_size
    return PoseWindowLayout(
        n_steps=sampling.n_steps if sampling.uses_sequence else 0,
        n_labels=sampling.n_labels,
        height=size.height,
        width=size.width,
        cnn_bins=sampling.cnn_bins,
        cnn_frames=(1 if sampling.uses_cnn else 0) + (1 if sampling.next_cnn_frame else 0),
    )


def run_dhp19_memory_rows(cfg: BenchConfig, results: Results, downsample: int = 1) -> None:
    """Bytes per training sample of the pure-SNN (``sequence``) and hybrid windows, ours vs the
    reference layout, at the reference's 256x256 crop (``downsample`` > 1 only for the smoke test)."""
    peer = "reference layout (spec §6)"
    with tempfile.TemporaryDirectory(prefix="el_bench_dhp19_") as tmp:
        for mode in ("sequence", "hybrid"):
            datamodule = dhp19_datamodule(tmp, mode, downsample)
            datamodule.prepare_data()
            ours = measure_dhp19_sample(datamodule)
            layout = layout_of(datamodule)
            reference = reference_sample_bytes(layout)
            window = f"T={layout.n_steps}, {layout.height}x{layout.width}"
            if layout.cnn_frames:
                window += f", {layout.cnn_frames} CNN frames of {2 * layout.cnn_bins} ch"
            results.rows.append(
                Row(
                    GROUP,
                    f"bytes per sample: {mode}",
                    window,
                    float(ours.total),
                    peer,
                    float(sum(reference.values())),
                    note=f"ours: what the loader carries: {ours.nnz} non-zero counts as sparse entries "
                    f"({format_bytes(ours.entries['counts'])}) + labels; the float32 frames "
                    f"({format_bytes(ours.dense_bytes)}) are built on the device; reference lower bound "
                    f"(no cnn_label); dense labels alone {format_bytes(reference['label'])}",
                    unit="B",
                )
            )
            results.rows.append(
                Row(
                    GROUP,
                    f"label bytes per sample: {mode}",
                    window,
                    float(ours.label_bytes),
                    peer,
                    float(reference["label"]),
                    note="ours: joint coordinates (float32); reference: one-hot maps (float64)",
                    unit="B",
                )
            )
            results.rows.append(
                Row(
                    GROUP,
                    f"cache file per sample: {mode}",
                    window,
                    float(ours.cache_file_bytes),
                    note="the sparse entries on disk (int32 index + uint8/int16 count, behind a .npy "
                    "header); the reference keeps no cache (rebuilds every window)",
                    unit="B",
                )
            )
