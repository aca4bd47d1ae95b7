"""DHP19 for the hybrid ANN-SNN pose method: windows of events, CNN frames and joint coordinates.

Reads the per-recording h5 files of :mod:`event_lightning.events.formats.dhp19_h5` (the layout
the reference code consumes), the projection matrices ``P1..P4.npy`` and ``camera_positions.npy``.

Sample timing (hybrid_pose spec §6), per recording and camera, all in ms:

* ``window_rule="common"`` (default): first window start ``= step * ceil(t[cnn_event_count] / step)``
  (constant-count CNN frames need that many events before it; the rule holds in every mode, so
  all models are scored on the same windows); windows start every ``step_ms``; a file gives
  ``floor((L - first - window_ms) / step_ms)`` windows with ``L = min(len(ms_to_idx), 10 N + 10)``
  (N labels).
* ``window_rule="reference"``: each reference loader's rule. Constant-count CNN frames start as
  above, but the hybrid's loader gives ``floor((L - first - step_ms) / step_ms)`` windows whatever
  their length (so one more 200 ms test window per recording) and the CNN's loader
  ``floor((L - first) / step_ms)`` frames; without constant-count frames (the SNN, the RNN, the
  constant-duration hybrid CNN-RNN) windows start at 0 ms and a file gives
  ``floor((L - window_ms) / step_ms) + 1`` (a constant-duration CNN frame before 0 ms is all
  zeros; constant-duration CNN frames alone start at ``window_ms``). A window ending at
  ``len(ms_to_idx)`` takes the events up to the file's last one, which it leaves out (the
  reference's ``idx_end = -1``). Windows whose labels would run past the label file are left out
  (the reference's assertion fails on them). The reference rounds the constant-count start up to
  a multiple of 100 ms whatever the step (its CNN at 100 Hz steps 10 ms from there).
* CNN frame: the ``cnn_event_count`` events before ``ms_start`` in ``cnn_bins`` bins (bin edges
  from the first/last of those events, as in the reference), channels polarity-major
  (``p * cnn_bins + b``); or with ``cnn_frame="duration"`` the ``window_ms`` before ``ms_start``.
  Its label is label index ``ms_start / 10 - 1`` (time ``ms_start``; label 0 for a window at 0 ms,
  as in the reference).
* event window ``[ms_start, ms_start + window_ms)``: ``window_ms / bin_ms`` bins of 2 polarity
  counts (or, with ``representation="voxel_grid"``, one channel of the reference's voxel grid:
  :mod:`event_lightning.data.datasets.dhp19.voxel`). ``bin_alignment="window"`` puts the bin
  edges at ``ms_start + k * bin_ms`` so bins line up with the 10 ms labels; ``"events"``
  reproduces the reference, whose bin edges run from the first to the last event of the window
  (spec §9 pitfall 3).
* labels every 10 ms: label ``k`` of the window is at ``ms_start + 10 (k + 1)`` and belongs to
  time step ``label_steps[k] = (k + 1) * 10 / bin_ms - 1`` (every step at 10 ms bins, every
  second step at 5 ms bins).
* the hybrid's training windows also carry the CNN frame ending at ``ms_start + window_ms``
  (``cnn_input_next``: the target of the membrane-potential loss).

Frames and labels live on the crop of :class:`~event_lightning.data.datasets.dhp19.crop.DHP19Crop`.
A sample carries its count tensors sparse and its labels dense;
:mod:`event_lightning.data.datasets.dhp19.batches` says what a batch holds.

With ``stack_test_views`` the test (and validation) samples hold all ``camera_views`` of the same
window: every per-view entry gets a view axis after the batch axis, for 3D triangulation.
:meth:`DHP19Windows.dense_sample` gives one sample with its dense tensors (no batch axis).
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from event_lightning.data.datasets.dhp19.batches import densify_counts
from event_lightning.data.datasets.dhp19.crop import DHP19Crop
from event_lightning.data.datasets.dhp19.recordings import DHP19Recording
from event_lightning.data.datasets.dhp19.sampling import LABEL_PERIOD_MS, DHP19Sampling
from event_lightning.data.datasets.dhp19.voxel import pose_voxel_grid
from event_lightning.data.loading.bad_samples import (
    BAD_SAMPLE_ERRORS,
    BadSampleLedger,
    BadSamplePolicy,
    check_bad_sample_policy,
    record_setup_skips,
)
from event_lightning.data.loading.frame_cache import FrameCache
from event_lightning.data.loading.sample_transforms import SampleTransform
from event_lightning.data.loading.sparse_counts import from_records, to_records
from event_lightning.events.core import EventFormatError
from event_lightning.events.formats.dhp19_h5 import (
    DHP19_LABEL_PERIOD_US,
    DHP19_SENSOR_SIZE,
    DHP19EventFile,
    read_dhp19_labels,
    read_projection_matrices,
)
from event_lightning.events.represent.frames import to_frame
from event_lightning.events.represent.histogram import stacked_histogram
from event_lightning.metrics.triangulation import CAMERA_TO_P_INDEX

__all__ = ["DHP19Windows"]

EventsFn = Callable[[np.ndarray], np.ndarray]

log = logging.getLogger(__name__)

REPRESENTATION_CODE_VERSION = "dhp19-pose-2"  # 2: the cache holds sparse entries
# The reference's constant-count start: ceil(t[7500] / 100 ms) * 100 ms, whatever its step.
_REFERENCE_START_GRID_MS = 100


def _transformed(chunk: np.ndarray, transform: EventsFn | None) -> np.ndarray:
    return chunk if transform is None else transform(chunk)


def _cnn_label(first_label: np.ndarray | int) -> np.ndarray | int:
    """Label index of the CNN frame ending at a window start: the label at that time, and label 0
    for a window at 0 ms (there is none at 0 ms; the reference takes label 0)."""
    return np.maximum(first_label - 1, 0)


def _labels(per_label: np.ndarray, first: int, count: int) -> np.ndarray:
    """``per_label[first : first + count]``, padded with NaN (unlabelled, ignored by the metrics) where
    the label file ends first: only the held labels of the last CNN frames of a recording can."""
    out = per_label[first : first + count]
    if len(out) == count:
        return out
    return np.concatenate([out, np.full((count - len(out), *per_label.shape[1:]), np.nan, per_label.dtype)])


def _event_range(events: DHP19EventFile, cam: int, start_ms: int, end_ms: int) -> tuple[int, int]:
    """Event indices ``[a, b)`` of ``[start_ms, end_ms)``. A window ending at ``len(ms_to_idx)``
    (possible with ``window_rule="reference"``) runs to the file's last event and leaves that one
    out, as the reference's ``idx_end = -1`` does."""
    table = events.ms_to_idx(cam)
    end = int(table[end_ms]) if end_ms < len(table) else events.num_events(cam) - 1
    return int(table[start_ms]), end


@dataclass
class _Source:
    """A recording opened for sampling: the lazy events file and its labels per camera."""

    recording: DHP19Recording
    events: DHP19EventFile
    poses: np.ndarray  # [N, 13, 3] mm
    landmarks: dict[int, np.ndarray] = field(default_factory=dict)  # camera -> [N, 13, 2]
    window_starts: dict[int, np.ndarray] = field(default_factory=dict)  # camera -> [n] ms


class DHP19Windows(Dataset):
    """Windows of DHP19 recordings as dicts of tensors (see the module docstring and
    :mod:`event_lightning.data.datasets.dhp19.batches`).

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

    Windows whose labels have no finite joint (DHP19 marks missing markers NaN) are left out
    whatever ``on_bad_sample`` says: they would train the heatmaps towards zero. Each recording
    that loses windows is warned about and recorded once in ``ledger`` (so the
    ``BadSampleReporter`` logs it as ``data/skipped_files_setup`` every epoch).
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
        self.unlabelled: list[tuple[Path, str]] = []
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
        if self.unlabelled:
            # Whatever on_bad_sample says: such a window has nothing to learn from or score on.
            for file, reason in self.unlabelled:
                if ledger is not None:
                    ledger.record_setup(file, reason)
            listing = "; ".join(f"{file}: {reason}" for file, reason in self.unlabelled)
            message = f"DHP19 {name}: windows without labels left out of {len(self.unlabelled)} recording(s): {listing}"
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
        self.transform: SampleTransform | None = None

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
        unlabelled: set[int] = set()
        for cam in self.cameras:
            source.landmarks[cam] = self.crop.landmarks(source.poses, self.projection[cam])
            starts = self._window_starts(events, cam, len(poses))
            labelled = self._labelled(source.poses, starts)
            unlabelled.update(starts[~labelled].tolist())
            source.window_starts[cam] = starts[labelled]
        events.close()
        if unlabelled:
            self.unlabelled.append(
                (
                    recording.label_path,
                    f"{len(unlabelled)} window(s) (from {min(unlabelled)} ms) have no joint with finite "
                    "XYZ/3d_poses among the labels they train on: left out",
                )
            )
        return source

    def _labelled(self, poses: np.ndarray, starts_ms: np.ndarray) -> np.ndarray:
        """``[n]`` bool: the window at each start has a label with a finite joint among those its mode
        trains on (the CNN frame's label, the window's labels): DHP19 marks missing markers NaN, and
        a window whose labels are all missing would train the heatmaps towards zero."""
        s = self.sampling
        finite = np.isfinite(poses).all(-1).any(-1)  # [N] labels with at least one joint
        first = starts_ms // LABEL_PERIOD_MS
        labelled = np.zeros(len(starts_ms), dtype=bool)
        if s.uses_cnn:
            labelled |= finite[_cnn_label(first)]
        if s.uses_sequence:
            seen = np.concatenate([[0], np.cumsum(finite)])
            labelled |= seen[np.minimum(first + s.n_labels, len(finite))] > seen[first]
        return labelled

    def _window_starts(self, events: DHP19EventFile, cam: int, n_labels: int) -> np.ndarray:
        """Start (ms) of every window of camera ``cam`` (see the module docstring)."""
        s = self.sampling
        table = events.ms_to_idx(cam)
        length = min(len(table), n_labels * LABEL_PERIOD_MS + LABEL_PERIOD_MS)
        count_frames = s.cnn_frame == "count" and (s.uses_cnn or s.window_rule == "common")
        if count_frames:
            if events.num_events(cam) <= s.cnn_event_count:
                return np.zeros(0, dtype=np.int64)
            t_ref = int(events.file[f"cam{cam}_events/t"][s.cnn_event_count])
            grid = s.step_ms if s.window_rule == "common" else _REFERENCE_START_GRID_MS
            first = max(grid * math.ceil(t_ref / (1000 * grid)), grid)
        if s.window_rule == "common":
            # One rule in every mode, so that CNN, SNN, RNN and hybrids are scored on the same windows.
            if not count_frames:
                first = s.step_ms * math.ceil(s.window_ms / s.step_ms)
            count = (length - first - s.window_ms) // s.step_ms
        elif count_frames:  # the reference's length: floor((L - first - step) / step), any window
            count = (length - first - (s.step_ms if s.mode == "hybrid" else 0)) // s.step_ms
        else:  # the reference's loaders without constant-count frames start at 0 ms
            first = s.window_ms if s.mode == "cnn" else 0
            count = (length - s.window_ms) // s.step_ms + 1
        starts = first + s.step_ms * np.arange(max(count, 0), dtype=np.int64)
        if not s.uses_sequence:  # CNN frames need only their own label; the held labels are padded
            return starts
        # a window's labels must exist (the reference asserts it; only its edge windows can lack them)
        return starts[starts // LABEL_PERIOD_MS + s.n_labels <= n_labels]

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

    def _cnn_frame(
        self, events: DHP19EventFile, cam: int, end_ms: int, transform: EventsFn | None = None
    ) -> np.ndarray:
        """``[channels_per_bin * cnn_bins, H / f, W / f]``: the CNN frame ending at ``end_ms``,
        channels polarity-major (``p * cnn_bins + b``) for histograms; ``transform`` runs on its
        events (full sensor) first."""
        s = self.sampling
        if s.cnn_frame == "duration":
            if end_ms < s.window_ms:  # before the recording: no events (the reference's zero frame)
                size = self.crop.sensor_size
                return np.zeros((s.channels_per_bin * s.cnn_bins, size.height, size.width), dtype=self._dtype)
            frames = self._frames(events, cam, end_ms - s.window_ms, end_ms, s.cnn_bins, transform)
            return np.ascontiguousarray(frames.transpose(1, 0, 2, 3)).reshape(-1, *frames.shape[2:])
        end = int(events.ms_to_idx(cam)[end_ms])
        chunk = _transformed(events.events(cam, max(end - s.cnn_event_count, 0), end), transform)
        if s.representation == "voxel_grid":
            return self.crop.crop_pool(pose_voxel_grid(chunk, DHP19_SENSOR_SIZE, s.cnn_bins))
        sensor = self.crop.binning_sensor
        hist = stacked_histogram(self.crop.remap(chunk), sensor, s.cnn_bins, channel_order="polarity_major")
        return self.crop.drop_spare(hist)

    @property
    def _dtype(self) -> type:
        """Counts are integers until the device makes them float32; voxel grids are float32 already."""
        return np.int64 if self.sampling.representation == "histogram" else np.float32

    def _frames(
        self,
        events: DHP19EventFile,
        cam: int,
        start_ms: int,
        end_ms: int,
        n_bins: int,
        transform: EventsFn | None = None,
    ) -> np.ndarray:
        """``[n_bins, channels_per_bin, H / f, W / f]``: the representation of ``[start_ms, end_ms)``
        (``transform`` runs on its events, full sensor, first)."""
        s = self.sampling
        chunk = _transformed(events.events(cam, *_event_range(events, cam, start_ms, end_ms)), transform)
        if s.representation == "voxel_grid":
            # on the full sensor, whose non-zero cells the reference standardises, then cropped
            t_range = None if s.bin_alignment == "events" else (start_ms * 1000, end_ms * 1000)
            return self.crop.crop_pool(pose_voxel_grid(chunk, DHP19_SENSOR_SIZE, n_bins, t_range))[:, None]
        sensor = self.crop.binning_sensor
        chunk = self.crop.remap(chunk)
        if len(chunk) == 0:
            counts = np.zeros((n_bins, *sensor.frame_shape), dtype=np.int64)
        elif s.bin_alignment == "events":
            counts = stacked_histogram(chunk, sensor, n_bins, dtype=np.int64)
        else:
            bin_us = (end_ms - start_ms) * 1000 // n_bins
            counts = to_frame(chunk, sensor, time_window=bin_us, start_time=start_ms * 1000, end_time=end_ms * 1000)
        return self.crop.drop_spare(counts)

    def _counts(self, source: _Source, cam: int, ms_start: int, transform: EventsFn | None = None) -> np.ndarray:
        """Every input tensor of one view, stacked on the channel axis ``[C_total, H, W]`` (int64
        counts, or float32 voxel grids)."""
        s, parts = self.sampling, []
        if s.uses_cnn:
            parts.append(self._cnn_frame(source.events, cam, ms_start, transform))
        if s.uses_sequence:
            frames = self._frames(source.events, cam, ms_start, ms_start + s.window_ms, s.n_steps, transform)
            parts.append(frames.reshape(-1, *frames.shape[2:]))
        if s.next_cnn_frame:
            parts.append(self._cnn_frame(source.events, cam, ms_start + s.window_ms, transform))
        return np.concatenate(parts).astype(self._dtype, copy=False)

    @property
    def count_parts(self) -> tuple[tuple[str, int, int], ...]:
        """``(key, channels, channels of one time step)`` of each tensor in the channel stack of
        :meth:`_counts`, in order (``events`` is ``[T, channels_per_bin]``; CNN frames have no step
        axis: 0)."""
        s = self.sampling
        per_bin, parts = s.channels_per_bin, []
        if s.uses_cnn:
            parts.append(("cnn_input", per_bin * s.cnn_bins, 0))
        if s.uses_sequence:
            parts.append(("events", per_bin * s.n_steps, per_bin))
        if s.next_cnn_frame:
            parts.append(("cnn_input_next", per_bin * s.cnn_bins, 0))
        return tuple(parts)

    @property
    def count_shape(self) -> tuple[int, int, int]:
        """``(C_total, H, W)``: the channel stack of one view (the :attr:`count_parts` in order)."""
        size = self.crop.sensor_size
        return (sum(channels for _, channels, _ in self.count_parts), size.height, size.width)

    def _view(self, source: _Source, cam: int, ms_start: int) -> dict[str, Any]:
        """The labels and geometry of one view (its counts travel apart, sparse)."""
        s = self.sampling
        out: dict[str, Any] = {}
        first_label = ms_start // LABEL_PERIOD_MS
        out["cnn_landmarks"] = torch.from_numpy(source.landmarks[cam][_cnn_label(first_label)])
        out["landmarks"] = torch.from_numpy(_labels(source.landmarks[cam], first_label, s.n_labels))
        out["label_3d"] = torch.from_numpy(_labels(source.poses, first_label, s.n_labels).astype(np.float32))
        out["cnn_label_3d"] = torch.from_numpy(source.poses[_cnn_label(first_label)].astype(np.float32))
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
        :class:`~event_lightning.data.loading.sparse_counts.SparseCounts`), ``count_parts``
        (:attr:`count_parts`) and the labels; :meth:`dense_sample` gives the dense tensors."""
        source_index, cam, ms_start = self.index[index]
        source = self.sources[source_index]
        cameras = self.cameras if cam < 0 else [cam]
        shape = (len(cameras), *self.count_shape) if cam < 0 else self.count_shape

        def build() -> np.ndarray:
            name = f"DHP19 counts of {source.recording.events_path.name} at {ms_start} ms (sample {index})"
            views = [
                self._counts(source, c, ms_start, self._sample_transform(index, f"{name}, camera {c}")) for c in cameras
            ]
            counts = np.stack(views) if cam < 0 else views[0]
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

    def _sample_transform(self, index: int, origin: str) -> EventsFn | None:
        """``transform`` for the events of sample ``index``: every chunk of the sample (CNN frame,
        sequence, next frame) gets the same generator, so a random choice is the same in each."""
        return None if self.transform is None else functools.partial(self.transform, index=index, origin=origin)

    def dense_sample(self, index: int) -> dict[str, Any]:
        """Sample ``index`` with its counts dense (float32 ``cnn_input`` / ``events`` /
        ``cnn_input_next``, as listed in :mod:`.batches`, without the batch axis): for inspection
        and tests; loaders keep samples sparse until ``DHP19DataModule.on_after_batch_transfer``."""
        sample = self[index]
        dense = densify_counts(sample)
        parts = {key for key, _, _ in sample["count_parts"]}
        return {key: value[0] if key in parts else value for key, value in dense.items()}
