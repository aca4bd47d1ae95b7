"""The DHP19 DataModules of the pose models: the real recordings and the synthetic stand-in.

:class:`DHP19DataModule` is used by ``config/pose_{cnn,snn,rnn,hybrid_cnn_snn,hybrid_cnn_rnn}_dhp19.yaml``;
:class:`SyntheticDHP19DataModule` by ``config/pose_*_synthetic.yaml`` (it writes the stand-in of
:mod:`event_lightning.data.standins.dhp19` first).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from event_lightning.data.datasets.dhp19.batches import collate_dhp19, densify_counts
from event_lightning.data.datasets.dhp19.crop import DHP19Crop
from event_lightning.data.datasets.dhp19.recordings import DHP19_SOURCE, find_recordings
from event_lightning.data.datasets.dhp19.sampling import DHP19Sampling
from event_lightning.data.datasets.dhp19.windows import DHP19Windows
from event_lightning.data.loading.bad_samples import (
    BadSampleLedger,
    BadSamplePolicy,
    IndexedFiles,
    check_bad_sample_policy,
    guard_loader,
)
from event_lightning.data.loading.loaders import LoaderSettings, build_loader
from event_lightning.data.loading.missing_data import DatasetNotFoundError, dataset_not_found
from event_lightning.data.loading.predict_samples import PredictSamples
from event_lightning.data.loading.sample_transforms import EpochCountingSampler, StageTransforms
from event_lightning.data.standins.dhp19 import DEFAULT_DURATION_MS, SyntheticDHP19Config, ensure_synthetic_dhp19
from event_lightning.events.formats.dhp19_h5 import DHP19_SENSOR_SIZE

__all__ = ["DHP19DataModule", "SyntheticDHP19DataModule"]

log = logging.getLogger(__name__)

TRANSFORM_SETTINGS = ["train_transform", "eval_transform"]


class DHP19DataModule(pl.LightningDataModule):
    """DHP19 windows for the pose models (what a batch holds: :mod:`.batches`; timing: :mod:`.windows`).

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
        window_rule: ``"common"`` (every model scored on the same windows) or ``"reference"``
            (each reference loader's windows: see :mod:`.windows`).
        representation: ``"histogram"`` (per-polarity counts, the reference's ``stacked_hist``) or
            ``"voxel_grid"`` (the reference's normalised voxel grid, one signed channel a bin: set the
            models' ``in_channels`` to 1 and ``cnn_in_channels`` / PoseCNN ``in_channels`` to ``cnn_bins``).
        downsample: sum-pooling factor after the 256x256 crop (1 = reference).
        train_subjects, test_subjects: subject numbers (1-12 and 13-17).
        val_subjects: validation subjects; None = the test subjects (the reference has no
            validation split and selects epochs on the test subjects).
        stack_test_views: validation/test samples hold every camera view (for 3D).
        next_cnn_frame: training windows also carry the next window's CNN frame (the hybrid
            CNN-SNN's membrane-potential target); None = only in ``"hybrid"`` mode.
        batch_size, eval_batch_size, num_workers, pin_memory: loaders (eval batch defaults to
            batch_size; ``auto`` workers and pinning: see :mod:`event_lightning.data.loading.loaders`).
        exclude_recordings: stems to leave out.
        on_non_monotonic: ``"skip"`` (default; logged with a count) or ``"raise"``.
        cache_dir: optional :class:`FrameCache` folder for the sparse count entries.
        on_bad_sample: ``"raise"`` (default) or ``"skip"``: a recording that cannot be opened is
            left out when the split is built, a window that cannot be read is dropped from its
            batch; both are recorded in ``bad_samples`` (see :mod:`event_lightning.data.loading.bad_samples`).
        train_transform, eval_transform: event transforms (``class_path`` entries: this package's
            :mod:`event_lightning.events.augment`, tonic's ``tonic.transforms``, any callable on
            events) for training and for validation, test and predict, run on each camera's events
            of a window on the full 346x260 sensor before the crop and the representation (a
            stage with transforms does not read ``cache_dir``); every part of one sample gets
            the same generator. The pose labels are not transformed: transforms that move events
            (flips, crops, jitter) misalign them; filters, drops and time jitter do not. See
            :mod:`event_lightning.data.loading.sample_transforms`.
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
        window_rule: str = "common",
        representation: str = "histogram",
        downsample: int = 1,
        train_subjects: list[int] | None = None,
        test_subjects: list[int] | None = None,
        val_subjects: list[int] | None = None,
        stack_test_views: bool = False,
        next_cnn_frame: bool | None = None,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int | Literal["auto"] = "auto",
        pin_memory: bool | Literal["auto"] = "auto",
        exclude_recordings: list[str] | None = None,
        on_non_monotonic: str = "skip",
        cache_dir: str | None = None,
        on_bad_sample: BadSamplePolicy = "raise",
        train_transform: list[Callable] | None = None,
        eval_transform: list[Callable] | None = None,
    ) -> None:
        super().__init__()
        self.on_bad_sample = check_bad_sample_policy(on_bad_sample)
        self.bad_samples = BadSampleLedger()
        self.save_hyperparameters(ignore=TRANSFORM_SETTINGS)  # objects: kept in config.yaml
        self.transforms = StageTransforms(train_transform, eval_transform, DHP19_SENSOR_SIZE)
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
            window_rule=window_rule,
            representation=representation,
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
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.loader_settings = LoaderSettings(batch_size, num_workers, pin_memory)
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
            train = name == "train"
            try:
                recordings = find_recordings(self.root, subjects, self.exclude)
                if not recordings:
                    raise FileNotFoundError(f"no <stem>_events.h5 of subjects {subjects} ({name} split)")
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
            except FileNotFoundError as error:
                if isinstance(error, DatasetNotFoundError) or isinstance(self, SyntheticDHP19DataModule):
                    raise
                raise dataset_not_found(DHP19_SOURCE, self.root, self.root, str(error)) from error
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

    def _sample_files(self, name: str) -> list[str]:
        """The events file of the recording behind each sample of split ``name``."""
        split = self.split(name)
        return [str(split.sources[i].recording.events_path) for i, _, _ in split.index]

    def _loader(self, name: str, shuffle: bool, batch_size: int, stage: str) -> DataLoader:
        split = self.transforms.staged(self.split(name), stage)
        files = self._sample_files(name)
        origin = IndexedFiles(files) if files else None
        policy, ledger = self.on_bad_sample, self.bad_samples
        dataset, collate = guard_loader(split, collate_dhp19, policy, ledger, stage, origin)
        settings = dataclasses.replace(self.loader_settings, batch_size=batch_size)
        sampler = EpochCountingSampler(dataset, self.transforms.epoch) if shuffle else None
        return build_loader(dataset, settings, self.trainer, sampler=sampler, collate_fn=collate)

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

    def predict_samples(self) -> PredictSamples:
        """Predict serves the test subjects' windows (``camera`` and ``ms_start`` in the predictions
        say which window of the recording)."""
        return PredictSamples("test", self._sample_files("test"))


class SyntheticDHP19DataModule(DHP19DataModule):
    """:class:`DHP19DataModule` on the synthetic stand-in, written under ``root/synthetic-<key>``.

    All :class:`DHP19DataModule` arguments apply (``p_matrices_dir`` is the written folder); the
    stand-in is described by ``subjects``, ``movements_per_subject``, ``duration_ms``, ``seed``,
    ``synthetic_cameras`` and ``frame_interval_us`` (see :class:`SyntheticDHP19Config`). The
    files are written once per configuration (the folder name hashes it).
    """

    def __init__(
        self,
        root: str = "datasets/synthetic_dhp19",
        subjects: list[int] | None = None,
        movements_per_subject: int = 1,
        duration_ms: int = DEFAULT_DURATION_MS,
        seed: int = 0,
        synthetic_cameras: list[int] | None = None,
        frame_interval_us: int = 5000,
        **kwargs,
    ) -> None:
        self.synthetic = SyntheticDHP19Config(
            subjects=tuple(subjects) if subjects is not None else (1, 2, 13),
            movements_per_subject=movements_per_subject,
            duration_ms=duration_ms,
            frame_interval_us=frame_interval_us,
            cameras=tuple(synthetic_cameras) if synthetic_cameras is not None else (2, 3),
            seed=seed,
        )
        folder = Path(root) / f"synthetic-{self.synthetic.key()}"
        kwargs.pop("p_matrices_dir", None)
        super().__init__(root=str(folder), p_matrices_dir=str(folder), **kwargs)
        self.save_hyperparameters(ignore=TRANSFORM_SETTINGS)

    def prepare_data(self) -> None:
        ensure_synthetic_dhp19(self.root, self.synthetic)  # once per configuration, atomically, under a lock

    def setup(self, stage: str) -> None:
        self.prepare_data()
        super().setup(stage)
