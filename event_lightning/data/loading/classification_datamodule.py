"""A LightningDataModule base for event-stream classification with framed, padded batches."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence, Sized
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from event_lightning.data.loading.bad_samples import (
    BadSampleLedger,
    BadSamplePolicy,
    IndexedFiles,
    check_bad_sample_policy,
    guard_loader,
)
from event_lightning.data.loading.config_checks import check_slicing_fits, first_measurable
from event_lightning.data.loading.frame_cache import FrameCache
from event_lightning.data.loading.frames_collate import pad_time_collate
from event_lightning.data.loading.frames_dataset import FRAMES_CODE_VERSION, EventFramesDataset
from event_lightning.data.loading.loaders import LoaderSettings, build_loader
from event_lightning.data.loading.predict_samples import PredictSamples
from event_lightning.data.loading.sample_transforms import (
    EpochCounter,
    EpochCountingSampler,
    StageTransforms,
    run_seed,
)
from event_lightning.data.loading.splits import class_mixed_order, stratified_holdout
from event_lightning.events.core import SensorSize
from event_lightning.events.represent.slicing import FrameSlicing

log = logging.getLogger(__name__)


class EpochSeededRandomSampler(EpochCountingSampler):
    """A shuffling sampler whose order is a pure function of ``(seed, epoch)``.

    A plain ``RandomSampler`` draws its order from the global torch RNG, whose state a checkpoint
    does not hold, so a run resumed at epoch ``e`` would see a different order than the same run
    trained straight through. Lightning calls :meth:`set_epoch` at the start of every epoch (also
    after a resume), which makes the order of every epoch reproducible. ``seed=None`` takes the
    run's seed (``PL_GLOBAL_SEED``, set by ``seed_everything``) when iterating, or 0.
    Under DDP :func:`~event_lightning.data.loading.loaders.build_loader` puts a shuffling
    ``DistributedSampler`` in its place (``EpochCountingDistributedSampler``), which is seeded by
    epoch the same way. ``epoch_counter`` receives the epoch for the training transforms
    (:mod:`event_lightning.data.loading.sample_transforms`), under DDP too.
    """

    def __init__(self, data_source: Sized, seed: int | None = None, epoch_counter: EpochCounter | None = None) -> None:
        super().__init__(data_source, epoch_counter)
        self.seed = seed

    def __iter__(self) -> Iterator[int]:
        seed = self.seed if self.seed is not None else run_seed()
        # SeedSequence mixes (seed, epoch) so neighbouring epochs get unrelated permutations.
        mixed = int(np.random.SeedSequence([seed & 0xFFFFFFFF, self.epoch]).generate_state(1, np.uint64)[0])
        generator = torch.Generator().manual_seed(mixed & 0x7FFFFFFFFFFFFFFF)
        yield from torch.randperm(len(self.data_source), generator=generator).tolist()


def _events_and_origin(sample: tuple[np.ndarray, int, str]) -> tuple[np.ndarray, str]:
    """``(raw events, origin)`` of an :data:`EventSource` sample ``(raw, label, origin)``."""
    raw, _, origin = sample
    return raw, origin


class EventClassificationDataModule(pl.LightningDataModule, ABC):
    """Train/test splits of labelled event streams framed on access.

    Subclasses set ``sensor_size`` and ``num_classes`` in ``__init__`` (the CLI links them into the
    model) and implement :meth:`build_split`. ``val_fraction > 0`` holds that share of every
    class of the training recordings out for validation (:func:`stratified_holdout`; the same
    recordings in every run), so ``test`` stays unseen; ``val_fraction: 0`` validates on the test
    split, as the norse POKER-DVS tutorial does. Validation, test and predict serve their
    recordings in a fixed class-mixed order (:func:`class_mixed_order`), so a few batches see
    every class.

    Batches are ``(frames [T_max, B, P, H, W], lengths [B], labels [B])``: integer counts with
    tonic ToFrame's values, uint8 when every count of the batch lies in [0, 255] (a quarter of the
    bytes of float32 to copy, pin and send), else int16 (see :func:`pad_time_collate`). Models
    cast on the device (the LIF classifier's input projection converts only the non-zeros).
    Loaders fetch whole batches: :class:`EventFramesDataset` frames a batch's recordings in one
    pass and the collate counts them straight into the padded batch. The training order is
    shuffled by an :class:`EpochSeededRandomSampler`, so a resumed run sees the same order as an
    uninterrupted one. ``num_workers`` and ``pin_memory`` (``"auto"`` by default: from the CPU
    count, pinned on a GPU) are resolved by :mod:`event_lightning.data.loading.loaders`.

    ``cache``: frame each recording once into ``cache_dir`` (default ``<root>/cache``), keyed by
    the files and every framing option (see :class:`FrameCache`), and read it back afterwards.

    ``train_transform`` / ``eval_transform``: lists of event transforms (this package's, tonic's,
    any callable on events; see :mod:`event_lightning.data.loading.sample_transforms`) run on each
    recording's events before framing, for training and for validation, test and predict. A
    stage with transforms frames every epoch (a frame cache would freeze them); the others still
    read the cache.

    ``on_bad_sample`` (see :mod:`event_lightning.data.loading.bad_samples`): ``raise`` lets a bad file's
    error through; ``skip`` drops the sample from its batch and records it in ``bad_samples``
    (subclasses that read their files at setup may also drop files there). Subclasses that know
    each sample's file return them from :meth:`sample_files` so skip records name the file.
    """

    def __init__(
        self,
        sensor_size: SensorSize,
        num_classes: int,
        *,
        time_window: float | None,
        event_count: int | None,
        n_time_bins: int | None,
        n_event_bins: int | None,
        overlap: float,
        include_incomplete: bool,
        batch_size: int,
        num_workers: int | Literal["auto"],
        pin_memory: bool | Literal["auto"],
        on_bad_sample: BadSamplePolicy = "raise",
        cache: bool = False,
        cache_dir: str | None = None,
        val_fraction: float = 0.0,
        train_transform: Sequence[Callable] | None = None,
        eval_transform: Sequence[Callable] | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"data.val_fraction must lie in [0, 1), found {val_fraction}")
        self.val_fraction = val_fraction
        self.on_bad_sample = check_bad_sample_policy(on_bad_sample)
        self.bad_samples = BadSampleLedger()
        self.loader_settings = LoaderSettings(batch_size, num_workers, pin_memory)
        self.batch_size = batch_size
        self.sensor_size = sensor_size
        self.num_classes = num_classes
        try:
            self.frame_spec = FrameSlicing(
                time_window, event_count, n_time_bins, n_event_bins, overlap, include_incomplete
            )
        except ValueError as error:  # name the config group: these are data.* keys
            raise ValueError(f"data: {error}") from None
        self.cache, self.cache_dir = cache, cache_dir
        self._splits: dict[bool, Dataset] = {}
        self.transforms = StageTransforms(train_transform, eval_transform, sensor_size)

    @abstractmethod
    def build_split(self, train: bool) -> Dataset:
        """The train (``True``) or test (``False``) dataset of ``(frames, label)`` samples."""

    def sample_files(self, train: bool) -> Sequence[str] | None:
        """The file of each sample of a split, in dataset order (None: not known)."""
        return None

    def sample_labels(self, train: bool) -> Sequence[int] | None:
        """The label of each sample of a split, when known without reading it (None: not known).

        With ``cache`` it lets a cached sample be served without opening its recording; the
        validation hold-out and the evaluation order are drawn per class from it (without it: a
        plain random hold-out, and evaluation in file order)."""
        return None

    def stage_indices(self, stage: str) -> tuple[bool, np.ndarray]:
        """``(train split?, indices into it in serving order)`` of the samples a stage reads.

        ``train``: the training recordings less the held-out ones (the sampler shuffles them);
        ``val``: the held-out ones, or the test split when ``val_fraction`` is 0; ``test`` and
        ``predict``: the test split. Evaluation stages come in :func:`class_mixed_order`.
        """
        train = stage in ("train", "val") and (stage == "train" or self.val_fraction > 0)
        size = len(self.split(train))
        labels = self.sample_labels(train)
        indices = np.arange(size)
        if train and self.val_fraction > 0:
            # without labels every sample counts as one class: a plain random hold-out
            kept, held = stratified_holdout(np.zeros(size, np.int64) if labels is None else labels, self.val_fraction)
            indices = kept if stage == "train" else held
        if stage != "train" and labels is not None:
            indices = indices[class_mixed_order(np.asarray(labels)[indices])]
        return train, indices

    def split(self, train: bool) -> Dataset:
        if train not in self._splits:
            dataset = self.build_split(train)
            if self.cache:
                self._attach_cache(dataset, train)
            self._splits[train] = dataset
        return self._splits[train]

    def _attach_cache(self, dataset: Dataset, train: bool) -> None:
        """Give ``dataset`` a :class:`FrameCache` keyed by its files and the framing options."""
        files = self.sample_files(train)
        if not isinstance(dataset, EventFramesDataset) or not files:
            log.warning(
                "data.cache: %s %s split cannot be cached (no file list); framing every epoch",
                type(self).__name__,
                "train" if train else "test",
            )
            return
        parent = Path(self.cache_dir) if self.cache_dir else Path(getattr(self, "root", ".")) / "cache"
        dataset.cache = FrameCache(
            parent,
            f"{type(self).__name__.lower()}-{'train' if train else 'test'}",
            files=files,
            params={**asdict(self.frame_spec), "sensor_size": self.sensor_size.as_list(), "layout": "T,P,H,W"},
            code_version=FRAMES_CODE_VERSION,
        )
        dataset.labels = self.sample_labels(train)

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.split(True)
        self.split(False)
        self._check_slicing(self.split(stage == "fit"))

    def _check_slicing(self, dataset: Dataset) -> None:
        """Stop on a slicing no recording can honour (see :mod:`event_lightning.data.loading.config_checks`)."""
        if isinstance(dataset, EventFramesDataset):
            first = first_measurable(lambda i: _events_and_origin(dataset.source(i)), len(dataset))
            if first is not None:
                check_slicing_fits(first[0], self.frame_spec, first[1])

    def _loader(self, stage: str) -> DataLoader:
        train, indices = self.stage_indices(stage)
        split = self.transforms.staged(self.split(train), stage)
        if len(indices) != len(split) or (indices != np.arange(len(split))).any():
            split = Subset(split, indices.tolist())
        files = self.sample_files(train)
        dataset, collate = guard_loader(
            split,
            pad_time_collate,
            self.on_bad_sample,
            self.bad_samples,
            stage,
            IndexedFiles([files[i] for i in indices]) if files else None,
        )
        shuffle = stage == "train"
        return build_loader(
            dataset,
            self.loader_settings,
            self.trainer,
            # On the split itself: the order depends only on (seed, epoch, len), as without the guard.
            sampler=EpochSeededRandomSampler(split, epoch_counter=self.transforms.epoch) if shuffle else None,
            collate_fn=collate,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")

    def predict_samples(self) -> PredictSamples:
        """Predict serves the test split in class-mixed order; each served sample's file where the
        subclass knows it (the loader's dataset index is the position in that order)."""
        train, indices = self.stage_indices("predict")
        files = self.sample_files(train)
        return PredictSamples("test", [files[i] for i in indices] if files else None)
