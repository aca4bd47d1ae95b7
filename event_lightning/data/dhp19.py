"""DHP19 for the hybrid ANN-SNN pose method: windows of events, CNN frames and joint coordinates.

Reads the per-recording h5 files of :mod:`event_lightning.events.formats.dhp19_h5` (the layout
the reference code consumes), the projection matrices ``P1..P4.npy`` and ``camera_positions.npy``.

Sample timing (hybrid_pose spec §6), per recording and camera, all in ms:

* first window start ``= step * ceil(t[cnn_event_count] / step)`` (constant-count CNN frames
  need that many events before it; the rule holds in every mode, so all models are scored on the
  same windows); windows start every ``step_ms``; a file gives
  ``floor((L - first - window_ms) / step_ms)`` windows with ``L = min(len(ms_to_idx), 10 N + 10)``
  (N labels).
* CNN frame: the ``cnn_event_count`` events before ``ms_start`` in ``cnn_bins`` bins (bin edges
  from the first/last of those events, as in the reference), channels polarity-major
  (``p * cnn_bins + b``); or with ``cnn_frame="duration"`` the ``window_ms`` before ``ms_start``.
  Its label is label index ``ms_start / 10 - 1`` (time ``ms_start``).
* event window ``[ms_start, ms_start + window_ms)``: ``window_ms / bin_ms`` bins of 2 polarity
  counts. ``bin_alignment="window"`` puts the bin edges at ``ms_start + k * bin_ms`` so bins line
  up with the 10 ms labels; ``"events"`` reproduces the reference, whose bin edges run from the
  first to the last event of the window (spec §9 pitfall 3).
* labels every 10 ms: label ``k`` of the window is at ``ms_start + 10 (k + 1)`` and belongs to
  time step ``label_steps[k] = (k + 1) * 10 / bin_ms - 1`` (every step at 10 ms bins, every
  second step at 5 ms bins).
* the hybrid's training windows also carry the CNN frame ending at ``ms_start + window_ms``
  (``cnn_input_next``: the target of the membrane-potential loss).

Frames are the counts of the crop rows 2:258, columns 34:290 of the 346x260 sensor, optionally
sum-pooled by ``downsample`` (a CPU-friendly option; the reference uses 1). Events are mapped onto
the (pooled) crop before counting, with the events outside the crop kept in a spare column that is
dropped afterwards, so time bins that depend on the first/last event match the full-sensor ones. Labels are
joint coordinates, never dense maps: ``(x, y)`` pixels of that grid, float (the model truncates
them, as the reference's int cast does), NaN for missing joints and joints outside the crop.

Samples and loader batches carry the count tensors sparse (``counts``: a
:class:`~event_lightning.data.sparse_counts.SparseCounts` of the per-view channel stack
``cnn_input | events | cnn_input_next``, and ``count_parts``: the names and channel counts of that
stack); :meth:`DHP19DataModule.on_after_batch_transfer` turns them into the dense float32 tensors
below on the batch's device (:func:`densify_counts`), so the dense frames never pass through the
DataLoader workers, their queues or the host-to-device copy. What the models get, after the transfer, is a dict of
batch-first tensors (models transpose ``events`` to time-first):

==================  ====================  ==============================================
key                 shape                 content
==================  ====================  ==============================================
cnn_input           [B, 2*cnn_bins, H, W] float32 counts (modes cnn, hybrid)
cnn_landmarks       [B, 13, 2]            grid pixels at ``ms_start``
events              [B, T, 2, H, W]       float32 counts (modes sequence, hybrid)
cnn_input_next      [B, 2*cnn_bins, H, W] next window's CNN frame (hybrid training)
landmarks           [B, L, 13, 2]         grid pixels at the L labelled steps
label_steps         [B, L]                time step of each label
label_3d            [B, L, 13, 3]         Vicon mm (NaN where missing); cnn_label_3d [B, 13, 3]
pixel_scale         [B]                   sensor pixels per grid pixel (= downsample)
projection          [B, 3, 4]             the camera's P; camera_centre [B, 3] mm
camera, ms_start    [B]                   int64
==================  ====================  ==============================================

With ``stack_test_views`` the test (and validation) samples hold all ``camera_views`` of the same
window: every per-view entry gets a view axis after the batch axis, for 3D triangulation.
:meth:`DHP19Windows.dense_sample` gives one sample with its dense tensors (no batch axis).
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from event_lightning.data.bad_samples import (
    BAD_SAMPLE_ERRORS,
    BadSampleLedger,
    BadSamplePolicy,
    IndexedFiles,
    check_bad_sample_policy,
    guard_loader,
    record_setup_skips,
)
from event_lightning.data.frame_cache import FrameCache
from event_lightning.data.sparse_counts import collate_sparse, densify_split, from_records, to_records
from event_lightning.events.core import EventFormatError, SensorSize
from event_lightning.events.formats.dhp19_h5 import (
    DHP19_LABEL_PERIOD_US,
    DHP19_SENSOR_SIZE,
    DHP19EventFile,
    read_dhp19_labels,
    read_projection_matrices,
)
from event_lightning.events.represent import stacked_histogram, to_frame
from event_lightning.metrics.triangulation import CAMERA_TO_P_INDEX, project_to_crop

__all__ = [
    "DHP19Crop",
    "DHP19DataModule",
    "DHP19Recording",
    "DHP19Sampling",
    "DHP19Windows",
    "collate_dhp19",
    "densify_counts",
    "find_recordings",
    "subject_of",
]

log = logging.getLogger(__name__)

LABEL_PERIOD_MS = DHP19_LABEL_PERIOD_US // 1000
REPRESENTATION_CODE_VERSION = "dhp19-pose-2"  # 2: the cache holds sparse entries
_SUBJECT = re.compile(r"^S(\d+)_")
_COUNT_KEYS = ("counts", "count_parts")


@dataclass(frozen=True)
class DHP19Crop:
    """The crop of the 346x260 sensor the networks see, and an optional sum-pooling factor.

    Attributes:
        left, top: crop offset in sensor pixels (34, 2: rows 2:258, columns 34:290).
        width, height: crop size (256 x 256).
        downsample: sum-pool factor of the cropped counts (1 = the reference resolution).
    """

    left: int = 34
    top: int = 2
    width: int = 256
    height: int = 256
    downsample: int = 1

    def __post_init__(self) -> None:
        if self.left < 0 or self.top < 0 or self.left + self.width > DHP19_SENSOR_SIZE.width:
            raise ValueError(f"DHP19Crop: columns {self.left}:{self.left + self.width} leave the 346-wide sensor")
        if self.top + self.height > DHP19_SENSOR_SIZE.height:
            raise ValueError(f"DHP19Crop: rows {self.top}:{self.top + self.height} leave the 260-high sensor")
        if self.downsample < 1 or self.width % self.downsample or self.height % self.downsample:
            raise ValueError(
                f"DHP19Crop: downsample must be >= 1 and divide the crop {self.width}x{self.height}; "
                f"found {self.downsample}"
            )

    @property
    def sensor_size(self) -> SensorSize:
        """Size of the frames the networks get: ``(width / f, height / f, 2)``."""
        f = self.downsample
        return SensorSize(self.width // f, self.height // f, 2)

    @property
    def binning_sensor(self) -> SensorSize:
        """The sensor :meth:`remap` maps onto: the pooled crop plus one spare column for the rest."""
        size = self.sensor_size
        return SensorSize(size.width + 1, size.height, 2)

    def remap(self, events: np.ndarray) -> np.ndarray:
        """Full-sensor events -> pooled crop pixels; events outside the crop go to the spare column.

        Every event is kept, so representations whose time bins depend on the first and last event
        (the reference's stacked histogram) are the same as on the full sensor; counting on the
        pooled grid equals sum-pooling the full-resolution counts. :meth:`drop_spare` removes the
        spare column afterwards.
        """
        x = events["x"].astype(np.int64) - self.left
        y = events["y"].astype(np.int64) - self.top
        inside = (x >= 0) & (x < self.width) & (y >= 0) & (y < self.height)
        f = self.downsample
        out = events.copy()
        out["x"] = np.where(inside, x // f, self.width // f)
        out["y"] = np.where(inside, y // f, 0)
        return out

    def drop_spare(self, frames: np.ndarray) -> np.ndarray:
        """``[..., H / f, W / f + 1]`` counts on :attr:`binning_sensor` -> ``[..., H / f, W / f]``."""
        return np.ascontiguousarray(frames[..., :-1])

    def landmarks(self, points_mm: np.ndarray, projection: np.ndarray) -> np.ndarray:
        """Project ``[..., 13, 3]`` mm joints to ``[..., 13, 2]`` grid pixels; NaN outside the crop."""
        crop_xy = project_to_crop(
            torch.from_numpy(np.ascontiguousarray(points_mm, dtype=np.float64)),
            torch.from_numpy(projection),
            DHP19_SENSOR_SIZE.height,
            (self.left, self.top),
        ).numpy()
        grid = crop_xy / self.downsample
        pixel = np.trunc(grid)
        size = np.array([self.width // self.downsample, self.height // self.downsample])
        inside = np.isfinite(grid).all(-1) & ((pixel >= 0) & (pixel < size)).all(-1)
        return np.where(inside[..., None], grid, np.nan).astype(np.float32)


@dataclass(frozen=True)
class DHP19Sampling:
    """How windows are cut from a recording (all times in ms; see the module docstring).

    Attributes:
        mode: ``"cnn"`` (CNN frames), ``"sequence"`` (event bins) or ``"hybrid"`` (both).
        window_ms: length of a window; a multiple of 10 ms.
        step_ms: distance between window starts; a multiple of 10 ms.
        bin_ms: length of a time step; divides 10 ms (10 -> 100 Hz, 5 -> 200 Hz).
        cnn_event_count: events in a constant-count CNN frame (7500).
        cnn_bins: time bins of a CNN frame (10 -> 20 channels).
        cnn_frame: ``"count"`` (constant count) or ``"duration"`` (the window before ms_start).
        bin_alignment: ``"window"`` (edges at ms_start + k * bin_ms) or ``"events"`` (reference).
        next_cnn_frame: also return the CNN frame ending at ``ms_start + window_ms``.
    """

    mode: str = "cnn"
    window_ms: int = 100
    step_ms: int = 100
    bin_ms: int = 10
    cnn_event_count: int = 7500
    cnn_bins: int = 10
    cnn_frame: str = "count"
    bin_alignment: str = "window"
    next_cnn_frame: bool = False

    def __post_init__(self) -> None:
        choices = {"mode": ("cnn", "sequence", "hybrid"), "cnn_frame": ("count", "duration")}
        choices["bin_alignment"] = ("window", "events")
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"DHP19 data.{name} must be one of {allowed}; found {getattr(self, name)!r}")
        for name in ("window_ms", "step_ms"):
            value = getattr(self, name)
            if value <= 0 or value % LABEL_PERIOD_MS:
                raise ValueError(f"DHP19 data.{name} must be a positive multiple of 10 ms; found {value}")
        if self.bin_ms <= 0 or LABEL_PERIOD_MS % self.bin_ms:
            raise ValueError(f"DHP19 data.bin_ms must divide the 10 ms label period; found {self.bin_ms}")
        if self.cnn_event_count <= 0 or self.cnn_bins <= 0:
            raise ValueError("DHP19 data.cnn_event_count and data.cnn_bins must be > 0")

    @property
    def n_steps(self) -> int:
        return self.window_ms // self.bin_ms

    @property
    def n_labels(self) -> int:
        return self.window_ms // LABEL_PERIOD_MS

    @property
    def label_steps(self) -> np.ndarray:
        per_label = LABEL_PERIOD_MS // self.bin_ms
        return (np.arange(self.n_labels, dtype=np.int64) + 1) * per_label - 1

    @property
    def uses_cnn(self) -> bool:
        return self.mode in ("cnn", "hybrid")

    @property
    def uses_sequence(self) -> bool:
        return self.mode in ("sequence", "hybrid")


def subject_of(stem: str) -> int | None:
    """Subject number from a recording name ``S<n>_...``; None if it does not follow that pattern."""
    match = _SUBJECT.match(stem)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class DHP19Recording:
    """One recording: its stem, events file and label file."""

    stem: str
    events_path: Path
    label_path: Path

    @property
    def subject(self) -> int:
        subject = subject_of(self.stem)
        if subject is None:
            raise ValueError(f"{self.events_path}: name does not start with S<subject>_")
        return subject


def find_recordings(root: str | Path, subjects: Sequence[int], exclude: Sequence[str] = ()) -> list[DHP19Recording]:
    """Every ``<stem>_events.h5`` under ``root`` of the given subjects, with its ``<stem>_label.h5``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"DHP19: folder {root} does not exist. Put the per-recording files <stem>_events.h5 and "
            "<stem>_label.h5 (DHP19 converted to the hybrid_ann_snn h5 layout) and P1..P4.npy, "
            "camera_positions.npy there, or use SyntheticDHP19DataModule"
        )
    recordings, ignored = [], []
    for events_path in sorted(root.glob("*_events.h5")):
        stem = events_path.name[: -len("_events.h5")]
        subject = subject_of(stem)
        if subject is None:
            ignored.append(events_path.name)
            continue
        if subject not in subjects or stem in exclude:
            continue
        label_path = root / f"{stem}_label.h5"
        if not label_path.is_file():
            raise FileNotFoundError(f"DHP19: {events_path} has no label file; expected {label_path}")
        recordings.append(DHP19Recording(stem, events_path, label_path))
    if ignored:
        log.warning("DHP19: ignored %d file(s) not named S<n>_*_events.h5 in %s: %s", len(ignored), root, ignored)
    return recordings


@dataclass
class _Source:
    """A recording opened for sampling: the lazy events file and its labels per camera."""

    recording: DHP19Recording
    events: DHP19EventFile
    poses: np.ndarray  # [N, 13, 3] mm
    landmarks: dict[int, np.ndarray] = field(default_factory=dict)  # camera -> [N, 13, 2]
    window_starts: dict[int, np.ndarray] = field(default_factory=dict)  # camera -> [n] ms


class DHP19Windows(Dataset):
    """Windows of DHP19 recordings as dicts of tensors (see the module docstring).

    Args:
        recordings: the recordings of this split.
        p_matrices_dir: folder of ``P1..P4.npy`` and ``camera_positions.npy``.
        camera_views: DHP19 camera ids (0-3).
        sampling: window timing and representation.
        crop: sensor crop and downsampling.
        stack_views: one sample per window with every camera on a view axis (else one per camera).
        on_non_monotonic: ``"skip"`` (leave the recording out, logged with a count) or ``"raise"``.
        cache_dir: a :class:`FrameCache` folder for the sparse count entries, or None (build on access).
        on_bad_sample: ``"raise"`` or ``"skip"`` (leave out, recorded once in ``ledger``) a
            recording whose files cannot be read; ``on_non_monotonic="raise"`` still raises for
            timestamps going backwards.
        ledger: where skipped recordings are recorded (None: only warned about).
    """

    def __init__(
        self,
        recordings: Sequence[DHP19Recording],
        p_matrices_dir: str | Path,
        camera_views: Sequence[int],
        sampling: DHP19Sampling,
        crop: DHP19Crop,
        stack_views: bool = False,
        on_non_monotonic: str = "skip",
        cache_dir: str | Path | None = None,
        name: str = "dhp19",
        on_bad_sample: BadSamplePolicy = "raise",
        ledger: BadSampleLedger | None = None,
    ) -> None:
        check_bad_sample_policy(on_bad_sample)
        if on_non_monotonic not in ("skip", "raise"):
            raise ValueError(f"on_non_monotonic must be 'skip' or 'raise'; found {on_non_monotonic!r}")
        unknown = [c for c in camera_views if c not in CAMERA_TO_P_INDEX]
        if unknown or not camera_views:
            raise ValueError(f"DHP19 camera_views must be a non-empty subset of 0..3; found {list(camera_views)}")
        self.cameras, self.sampling, self.crop, self.stack_views = (
            list(camera_views),
            sampling,
            crop,
            stack_views,
        )
        p_indices = [CAMERA_TO_P_INDEX[c] for c in self.cameras]
        matrices, positions = read_projection_matrices(p_matrices_dir, p_indices)
        self.projection = {c: matrices[CAMERA_TO_P_INDEX[c]] for c in self.cameras}
        self.centre = {c: positions[CAMERA_TO_P_INDEX[c] - 1] for c in self.cameras}
        self.sources: list[_Source] = []
        self.skipped: list[str] = []
        bad: list[tuple[Path, str]] = []
        for recording in recordings:
            try:
                source = self._open(recording, on_non_monotonic)
            except BAD_SAMPLE_ERRORS as error:
                wanted = on_non_monotonic == "raise" and "not monotonic" in str(error)
                if on_bad_sample != "skip" or wanted:
                    raise
                bad.append((recording.events_path, f"{type(error).__name__}: {error}"))
                continue
            if source is not None:
                self.sources.append(source)
        if bad:
            record_setup_skips(ledger, f"DHP19 {name}", bad)
        if self.skipped:
            message = f"DHP19 {name}: skipped {len(self.skipped)} recording(s): " + "; ".join(self.skipped)
            log.warning(message)
            warnings.warn(message, stacklevel=2)
        self.index = self._build_index()
        self.cache = None
        if cache_dir is not None:
            params = {"sampling": asdict(sampling), "crop": asdict(crop), "cameras": self.cameras}
            params |= {
                "stack_views": stack_views,
                "index": [[int(a), int(b), int(c)] for a, b, c in self.index],
            }
            files = [s.recording.events_path for s in self.sources]
            self.cache = FrameCache(
                cache_dir, name, files=files, params=params, code_version=REPRESENTATION_CODE_VERSION
            )

    # ------------------------------------------------------------------ index

    def _open(self, recording: DHP19Recording, on_non_monotonic: str) -> _Source | None:
        events = DHP19EventFile(recording.events_path, check=False)
        try:
            for cam in self.cameras:
                events.check_camera(cam)
        except EventFormatError as error:
            events.close()
            if on_non_monotonic == "skip" and "not monotonic" in str(error):
                self.skipped.append(str(error))
                return None
            raise
        poses, timestamps = read_dhp19_labels(recording.label_path)
        expected = (np.arange(len(poses)) + 1) * DHP19_LABEL_PERIOD_US
        off = np.abs(timestamps - expected) > 1000
        if off.any():
            # The reference ignores the timestamps and takes label k at (k + 1) * 10 ms; so do we.
            first_bad = int(np.flatnonzero(off)[0])
            log.warning(
                "%s: XYZ/timestamps are not (k + 1) * 10 ms (label %d at %d µs, %d labels off by > 1 ms); "
                "label k is used at (k + 1) * 10 ms as in the reference",
                recording.label_path,
                first_bad,
                int(timestamps[first_bad]),
                int(off.sum()),
            )
        source = _Source(recording, events, poses.transpose(0, 2, 1).copy())
        for cam in self.cameras:
            source.landmarks[cam] = self.crop.landmarks(source.poses, self.projection[cam])
            source.window_starts[cam] = self._window_starts(events, cam, len(poses))
        events.close()
        return source

    def _window_starts(self, events: DHP19EventFile, cam: int, n_labels: int) -> np.ndarray:
        s = self.sampling
        table = events.ms_to_idx(cam)
        length = min(len(table), n_labels * LABEL_PERIOD_MS + LABEL_PERIOD_MS)
        # The constant-count rule applies to every mode, so that CNN, SNN, RNN and hybrids are
        # scored on the same windows.
        if s.cnn_frame == "count":
            if events.num_events(cam) <= s.cnn_event_count:
                return np.zeros(0, dtype=np.int64)
            t_ref = int(events.file[f"cam{cam}_events/t"][s.cnn_event_count])
            first = max(s.step_ms * math.ceil(t_ref / (1000 * s.step_ms)), s.step_ms)
        else:
            first = s.step_ms * math.ceil(s.window_ms / s.step_ms)
        count = max((length - first - s.window_ms) // s.step_ms, 0)
        return first + s.step_ms * np.arange(count, dtype=np.int64)

    def _build_index(self) -> list[tuple[int, int, int]]:
        """Entries ``(source, camera or -1 for stacked views, ms_start)``."""
        index = []
        for i, source in enumerate(self.sources):
            if self.stack_views:
                common = source.window_starts[self.cameras[0]]
                for cam in self.cameras[1:]:
                    common = np.intersect1d(common, source.window_starts[cam])
                index += [(i, -1, int(ms)) for ms in common]
            else:
                for cam in self.cameras:
                    index += [(i, cam, int(ms)) for ms in source.window_starts[cam]]
        return index

    def __len__(self) -> int:
        return len(self.index)

    # ------------------------------------------------------------------ representations

    def _cnn_frame(self, events: DHP19EventFile, cam: int, end_ms: int) -> np.ndarray:
        s = self.sampling
        table = events.ms_to_idx(cam)
        if s.cnn_frame == "count":
            end = int(table[end_ms])
            chunk = events.events(cam, max(end - s.cnn_event_count, 0), end)
            sensor = self.crop.binning_sensor
            hist = stacked_histogram(self.crop.remap(chunk), sensor, s.cnn_bins, channel_order="polarity_major")
        else:
            bins = self._bins(events, cam, end_ms - s.window_ms, end_ms, s.cnn_bins)
            hist = bins.transpose(1, 0, 2, 3).reshape(-1, *bins.shape[2:])
        return self.crop.drop_spare(hist)

    def _bins(self, events: DHP19EventFile, cam: int, start_ms: int, end_ms: int, n_bins: int) -> np.ndarray:
        """``[n_bins, 2, H / f, W / f + 1]`` counts of ``[start_ms, end_ms)`` on the binning sensor."""
        table = events.ms_to_idx(cam)
        sensor = self.crop.binning_sensor
        chunk = self.crop.remap(events.events(cam, int(table[start_ms]), int(table[end_ms])))
        if len(chunk) == 0:
            return np.zeros((n_bins, *sensor.frame_shape), dtype=np.int64)
        if self.sampling.bin_alignment == "events":
            return stacked_histogram(chunk, sensor, n_bins, dtype=np.int64)
        bin_us = (end_ms - start_ms) * 1000 // n_bins
        return to_frame(chunk, sensor, time_window=bin_us, start_time=start_ms * 1000, end_time=end_ms * 1000)

    def _counts(self, source: _Source, cam: int, ms_start: int) -> np.ndarray:
        """Every count tensor of one view, stacked on the channel axis ``[C_total, H, W]``."""
        s, parts = self.sampling, []
        if s.uses_cnn:
            parts.append(self._cnn_frame(source.events, cam, ms_start))
        if s.uses_sequence:
            bins = self._bins(source.events, cam, ms_start, ms_start + s.window_ms, s.n_steps)
            parts.append(self.crop.drop_spare(bins).reshape(-1, *self.crop.sensor_size.frame_shape[1:]))
        if s.next_cnn_frame:
            parts.append(self._cnn_frame(source.events, cam, ms_start + s.window_ms))
        return np.concatenate(parts).astype(np.int64, copy=False)

    @property
    def count_parts(self) -> tuple[tuple[str, int], ...]:
        """``(key, channels)`` of each count tensor in the channel stack of :meth:`_counts`, in order."""
        s = self.sampling
        parts = []
        if s.uses_cnn:
            parts.append(("cnn_input", 2 * s.cnn_bins))
        if s.uses_sequence:
            parts.append(("events", 2 * s.n_steps))
        if s.next_cnn_frame:
            parts.append(("cnn_input_next", 2 * s.cnn_bins))
        return tuple(parts)

    @property
    def count_shape(self) -> tuple[int, int, int]:
        """``(C_total, H, W)``: the channel stack of one view (the :attr:`count_parts` in order)."""
        size = self.crop.sensor_size
        return (sum(channels for _, channels in self.count_parts), size.height, size.width)

    def _view(self, source: _Source, cam: int, ms_start: int) -> dict[str, Any]:
        """The labels and geometry of one view (its counts travel apart, sparse)."""
        s = self.sampling
        out: dict[str, Any] = {}
        first_label = ms_start // LABEL_PERIOD_MS
        labels = slice(first_label, first_label + s.n_labels)
        out["cnn_landmarks"] = torch.from_numpy(source.landmarks[cam][first_label - 1])
        out["landmarks"] = torch.from_numpy(source.landmarks[cam][labels])
        out["label_3d"] = torch.from_numpy(source.poses[labels].astype(np.float32))
        out["cnn_label_3d"] = torch.from_numpy(source.poses[first_label - 1].astype(np.float32))
        out["pixel_scale"] = float(self.crop.downsample)
        out["label_steps"] = torch.from_numpy(s.label_steps)
        out["projection"] = torch.from_numpy(self.projection[cam])
        out["camera_centre"] = torch.from_numpy(self.centre[cam])
        out["camera"] = cam
        out["ms_start"] = ms_start
        return out

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Sample ``index`` as it travels through the DataLoader: ``counts`` (the count stack
        ``[C_total, H, W]``, or ``[V, C_total, H, W]`` with stacked views, as
        :class:`~event_lightning.data.sparse_counts.SparseCounts`), ``count_parts``
        (:attr:`count_parts`) and the labels; :meth:`dense_sample` gives the dense tensors."""
        source_index, cam, ms_start = self.index[index]
        source = self.sources[source_index]
        cameras = self.cameras if cam < 0 else [cam]
        shape = (len(cameras), *self.count_shape) if cam < 0 else self.count_shape

        def build() -> np.ndarray:
            views = [self._counts(source, c, ms_start) for c in cameras]
            counts = np.stack(views) if cam < 0 else views[0]
            name = f"DHP19 counts of {source.recording.events_path.name} at {ms_start} ms (sample {index})"
            return to_records(counts, name)

        sparse = from_records(build() if self.cache is None else self.cache.load(index, build), shape)
        views = [self._view(source, c, ms_start) for c in cameras]
        if cam >= 0:
            out = views[0]
        else:
            out = {key: torch.stack([torch.as_tensor(v[key]) for v in views]) for key in views[0]}
            for key in ("ms_start", "label_3d", "cnn_label_3d", "label_steps", "pixel_scale"):  # same in every view
                out[key] = views[0][key]
        return {"counts": sparse, "count_parts": self.count_parts, **out}

    def dense_sample(self, index: int) -> dict[str, Any]:
        """Sample ``index`` with its counts dense (float32 ``cnn_input`` / ``events`` /
        ``cnn_input_next``, per the module docstring, without the batch axis): for inspection and
        tests; loaders keep samples sparse until :meth:`DHP19DataModule.on_after_batch_transfer`."""
        sample = self[index]
        dense = densify_counts(sample)
        return {key: value[0] if key in dict(sample["count_parts"]) else value for key, value in dense.items()}


def collate_dhp19(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A batch of :class:`DHP19Windows` samples: the sparse counts concatenated
    (:func:`collate_sparse`), ``count_parts`` once, every other entry by ``default_collate``."""
    parts = samples[0]["count_parts"]
    if any(sample["count_parts"] != parts for sample in samples[1:]):
        raise ValueError("collate_dhp19: the samples of a batch have different count_parts (mixed splits?)")
    rest = default_collate([{k: v for k, v in sample.items() if k not in _COUNT_KEYS} for sample in samples])
    return {"counts": collate_sparse([sample["counts"] for sample in samples]), "count_parts": parts, **rest}


def densify_counts(batch: dict[str, Any]) -> dict[str, Any]:
    """``batch`` (from :func:`collate_dhp19`, on its device) with ``counts`` / ``count_parts``
    replaced by the dense float32 tensors they hold, first in the dict as the module docstring
    lists them: ``cnn_input [B, (V,) 2*cnn_bins, H, W]``, ``events [B, (V,) T, 2, H, W]``,
    ``cnn_input_next``. A dict without ``counts`` is returned as it is."""
    if "counts" not in batch:
        return batch
    rest = {key: value for key, value in batch.items() if key not in _COUNT_KEYS}
    counts, parts = batch["counts"], batch["count_parts"]
    dense = densify_split(counts, [channels for _, channels in parts], axis=-3)
    out = {}
    for (key, channels), block in zip(parts, dense, strict=True):
        if key == "events":  # channels are (step, polarity) pairs
            block = block.view(*block.shape[:-3], channels // 2, 2, *block.shape[-2:])
        out[key] = block
    return out | rest


class DHP19DataModule(pl.LightningDataModule):
    """DHP19 windows for the pose models (see the module docstring for batches and timing).

    Args:
        root: folder with ``<stem>_events.h5`` / ``<stem>_label.h5`` per recording.
        p_matrices_dir: folder of ``P1..P4.npy`` and ``camera_positions.npy`` (default: ``root``).
        mode: ``"cnn"``, ``"sequence"`` or ``"hybrid"`` (what a sample holds).
        camera_views: DHP19 cameras (the reference trains one model per view: [3] or [2]).
        window_ms, step_ms, bin_ms: window length, stride and time-step length (ms).
        test_window_ms, test_step_ms: the same for validation/test (default: as for training;
            the reference tests 200 ms windows and scores their first 10 bins).
        cnn_event_count, cnn_bins, cnn_frame: the CNN frame (7500 events, 10 bins, "count").
        bin_alignment: ``"window"`` (bins on the label grid) or ``"events"`` (reference).
        downsample: sum-pooling factor after the 256x256 crop (1 = reference).
        train_subjects, test_subjects: subject numbers (1-12 and 13-17).
        val_subjects: validation subjects; None = the test subjects (the reference has no
            validation split and selects epochs on the test subjects).
        stack_test_views: validation/test samples hold every camera view (for 3D).
        next_cnn_frame: training windows also carry the next window's CNN frame (the hybrid
            CNN-SNN's membrane-potential target); None = only in ``"hybrid"`` mode.
        batch_size, eval_batch_size, num_workers: loaders (eval batch defaults to batch_size).
        exclude_recordings: stems to leave out.
        on_non_monotonic: ``"skip"`` (default; logged with a count) or ``"raise"``.
        cache_dir: optional :class:`FrameCache` folder for the sparse count entries.
        on_bad_sample: ``"raise"`` (default) or ``"skip"``: a recording that cannot be opened is
            left out when the split is built, a window that cannot be read is dropped from its
            batch; both are recorded in ``bad_samples`` (see :mod:`event_lightning.data.bad_samples`).
    """

    def __init__(
        self,
        root: str = "datasets/dhp19",
        p_matrices_dir: str | None = None,
        mode: str = "cnn",
        camera_views: list[int] | None = None,
        window_ms: int = 100,
        step_ms: int = 100,
        bin_ms: int = 10,
        test_window_ms: int | None = None,
        test_step_ms: int | None = None,
        cnn_event_count: int = 7500,
        cnn_bins: int = 10,
        cnn_frame: str = "count",
        bin_alignment: str = "window",
        downsample: int = 1,
        train_subjects: list[int] | None = None,
        test_subjects: list[int] | None = None,
        val_subjects: list[int] | None = None,
        stack_test_views: bool = False,
        next_cnn_frame: bool | None = None,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        exclude_recordings: list[str] | None = None,
        on_non_monotonic: str = "skip",
        cache_dir: str | None = None,
        on_bad_sample: BadSamplePolicy = "raise",
    ) -> None:
        super().__init__()
        self.on_bad_sample = check_bad_sample_policy(on_bad_sample)
        self.bad_samples = BadSampleLedger()
        self.save_hyperparameters()
        self.root = Path(root)
        self.p_matrices_dir = Path(p_matrices_dir) if p_matrices_dir else self.root
        self.camera_views = list(camera_views) if camera_views is not None else [3]
        self.crop = DHP19Crop(downsample=downsample)
        common = dict(
            mode=mode,
            bin_ms=bin_ms,
            cnn_event_count=cnn_event_count,
            cnn_bins=cnn_bins,
            cnn_frame=cnn_frame,
            bin_alignment=bin_alignment,
        )
        self.train_sampling = DHP19Sampling(
            window_ms=window_ms,
            step_ms=step_ms,
            next_cnn_frame=mode == "hybrid" if next_cnn_frame is None else next_cnn_frame,
            **common,
        )
        self.eval_sampling = DHP19Sampling(
            window_ms=test_window_ms or window_ms, step_ms=test_step_ms or step_ms, **common
        )
        self.train_subjects = list(train_subjects) if train_subjects is not None else list(range(1, 13))
        self.test_subjects = list(test_subjects) if test_subjects is not None else list(range(13, 18))
        self.val_subjects = list(val_subjects) if val_subjects is not None else self.test_subjects
        self.stack_test_views = stack_test_views
        self.batch_size, self.num_workers = batch_size, num_workers
        self.eval_batch_size = eval_batch_size or batch_size
        self.exclude = list(exclude_recordings or [])
        self.on_non_monotonic, self.cache_dir = on_non_monotonic, cache_dir
        # Linked into the model by the CLI.
        self.sensor_size = self.crop.sensor_size
        self.n_time_steps = self.train_sampling.n_steps
        self.datasets: dict[str, DHP19Windows] = {}

    def split(self, name: str) -> DHP19Windows:
        """The ``"train"``, ``"val"`` or ``"test"`` dataset (built on first use)."""
        if name not in self.datasets:
            subjects = {"train": self.train_subjects, "val": self.val_subjects, "test": self.test_subjects}[name]
            recordings = find_recordings(self.root, subjects, self.exclude)
            if not recordings:
                raise FileNotFoundError(
                    f"DHP19: no <stem>_events.h5 of subjects {subjects} in {self.root} ({name} split)"
                )
            train = name == "train"
            self.datasets[name] = DHP19Windows(
                recordings,
                self.p_matrices_dir,
                self.camera_views,
                self.train_sampling if train else self.eval_sampling,
                self.crop,
                stack_views=self.stack_test_views and not train,
                on_non_monotonic=self.on_non_monotonic,
                cache_dir=self.cache_dir,
                name=f"dhp19-{name}",
                on_bad_sample=self.on_bad_sample,
                ledger=self.bad_samples,
            )
            log.info("DHP19 %s: %d windows from %d recordings", name, len(self.datasets[name]), len(recordings))
        return self.datasets[name]

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.split("train")
            self.split("val")
        elif stage == "validate":
            self.split("val")
        elif stage in ("test", "predict"):
            self.split("test")

    def _loader(self, name: str, shuffle: bool, batch_size: int, stage: str) -> DataLoader:
        split = self.split(name)
        files = [split.sources[i].recording.events_path for i, _, _ in split.index]
        origin = IndexedFiles(files) if files else None
        policy, ledger = self.on_bad_sample, self.bad_samples
        dataset, collate = guard_loader(split, collate_dhp19, policy, ledger, stage, origin)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            drop_last=False,
            collate_fn=collate,
        )

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Make the sparse count stacks of a batch dense on its device (see :func:`densify_counts`)."""
        return densify_counts(batch) if isinstance(batch, dict) else batch

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True, self.batch_size, "train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False, self.eval_batch_size, "val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False, self.eval_batch_size, "test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", False, self.eval_batch_size, "predict")
