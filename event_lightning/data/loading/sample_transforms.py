"""A DataModule's ``train_transform`` / ``eval_transform``: the user's event transforms, one generator per sample.

Every event DataModule takes both settings as a list of transforms (in YAML, ``class_path``
entries: this package's :mod:`event_lightning.events.augment` dataclasses, tonic's
``tonic.transforms``, or any callable on events), chained with
:class:`~event_lightning.events.augment.Compose` into a :class:`SampleTransform`.

Each sample is transformed with its own generator, seeded by ``(run seed, epoch, sample index)``
for training and ``(run seed, sample index)`` for evaluation (the same events every epoch), so a
transformed sample depends neither on the loader's order nor on which worker loads it: a run
is repeatable, and a run resumed at epoch ``e`` sees the samples an uninterrupted run sees.
The run seed is ``PL_GLOBAL_SEED`` (set by ``seed_everything``), else 0. The training epoch
reaches worker processes through an :class:`EpochCounter` in shared memory, written by the
training sampler when Lightning calls its ``set_epoch`` (:class:`EpochCountingSampler`; under DDP
:class:`EpochCountingDistributedSampler`, which :func:`~event_lightning.data.loading.loaders.build_loader`
puts in its place).
tonic's transforms draw from numpy's global state, which Compose seeds from the sample's
generator, so they are as repeatable as this package's.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable, Sequence, Sized
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, RandomSampler

from event_lightning.data.loading.frame_cache import FrameCache
from event_lightning.events.augment import Compose
from event_lightning.events.core import SensorSize, validate

__all__ = [
    "EpochCounter",
    "EpochCountingDistributedSampler",
    "EpochCountingSampler",
    "SampleTransform",
    "StageTransforms",
    "run_seed",
    "sample_transform",
]

log = logging.getLogger(__name__)
T = TypeVar("T")


def run_seed() -> int:
    """The run's seed (``PL_GLOBAL_SEED``, set by ``seed_everything``), or 0, as a 32-bit key."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0)) & 0xFFFFFFFF


class EpochCounter:
    """The current training epoch, in shared memory so DataLoader workers read what the sampler writes."""

    def __init__(self) -> None:
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()

    def set(self, epoch: int) -> None:
        self._epoch.fill_(epoch)

    def get(self) -> int:
        return int(self._epoch[0])


class EpochCountingSampler(RandomSampler):
    """``DataLoader(shuffle=True)``'s sampler (the same order), which also hands the epoch Lightning
    sets at every epoch start (also after a resume) to ``epoch_counter``."""

    def __init__(self, data_source: Sized, epoch_counter: EpochCounter | None = None) -> None:
        super().__init__(data_source)
        self.epoch_counter = epoch_counter
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.epoch_counter is not None:
            self.epoch_counter.set(epoch)


class EpochCountingDistributedSampler(DistributedSampler):
    """The ``DistributedSampler`` Lightning puts in a DDP training loader (the same rank shards of the
    same shuffled order), which also hands the epoch Lightning sets at every epoch start to
    ``epoch_counter``.

    Lightning's own would replace the :class:`EpochCountingSampler` and drop the counter, so every
    sample would repeat its augmentation draw each epoch; a loader that already holds a
    ``DistributedSampler`` is left as it is.
    """

    def __init__(
        self, dataset: Dataset, epoch_counter: EpochCounter | None, *, num_replicas: int, rank: int, shuffle: bool
    ) -> None:
        # Lightning's seed for its DistributedSampler (the shards do not change with this class)
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=run_seed())
        self.epoch_counter = epoch_counter

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if self.epoch_counter is not None:
            self.epoch_counter.set(epoch)


@dataclass(frozen=True)
class SampleTransform:
    """A split's transforms (a :class:`Compose`), applied to one sample with its own generator.

    ``sensor_size`` is the DataModule's: the transforms must keep it (crop or downsample with the
    DataModule's own options), and what they return is validated against it, so an event pushed
    off the sensor is refused with an error naming the sample and the setting. ``epoch`` is the
    training epoch counter (None: evaluation, the same generator every epoch).
    """

    pipeline: Compose
    sensor_size: SensorSize
    setting: str
    epoch: EpochCounter | None = None

    def generator(self, index: int) -> np.random.Generator:
        """The generator of sample ``index`` (its position in the split, not in the loader's order)."""
        key = [run_seed(), int(index)] if self.epoch is None else [run_seed(), self.epoch.get(), int(index)]
        return np.random.default_rng(key)

    def __call__(self, events: np.ndarray, index: int, origin: str) -> np.ndarray:
        """EVENT_DTYPE ``events`` of sample ``index`` (read from ``origin``) -> transformed, validated events."""
        out, sensor = self.pipeline(events, self.sensor_size, self.generator(index))
        if sensor != self.sensor_size:
            raise ValueError(
                f"{origin}: {self.setting} changes the sensor from {self.sensor_size} to {sensor}, but the "
                "DataModule's model input is fixed to its sensor; crop or downsample with the DataModule's own options"
            )
        return validate(out, self.sensor_size, origin=f"{origin} after {self.setting}")


def sample_transform(
    transforms: Sequence[Callable] | None, sensor_size: SensorSize, setting: str, epoch: EpochCounter | None = None
) -> SampleTransform | None:
    """The :class:`SampleTransform` of a ``data.train_transform`` / ``eval_transform`` list (None: none)."""
    if not transforms:
        return None
    return SampleTransform(Compose(transforms), sensor_size, setting, epoch)


class StageTransforms:
    """A DataModule's ``train_transform`` and ``eval_transform``, and the epoch counter its training
    sampler writes: which transform a stage runs, and the dataset that runs it.

    A dataset takes a transform through its ``transform`` attribute (called as
    :class:`SampleTransform` on a sample's events before they become frames); one with a frame
    cache (a :class:`FrameCache` ``cache`` attribute) frames every access while it has a transform,
    since cached frames would freeze it. Event caches stay: the transforms run after them.
    """

    def __init__(
        self, train: Sequence[Callable] | None, evaluation: Sequence[Callable] | None, sensor_size: SensorSize
    ) -> None:
        self.epoch = EpochCounter()
        self.train = sample_transform(train, sensor_size, "data.train_transform", self.epoch)
        self.evaluation = sample_transform(evaluation, sensor_size, "data.eval_transform")

    def for_stage(self, stage: str) -> SampleTransform | None:
        """``train``'s transform for ``"train"``, the evaluation one for ``val``, ``test``, ``predict``."""
        return self.train if stage == "train" else self.evaluation

    def staged(self, dataset: T, stage: str) -> T:
        """``dataset`` as ``stage`` serves it: a shallow copy running the stage's transform, or itself."""
        transform = self.for_stage(stage)
        if transform is None:
            return dataset
        staged = copy.copy(dataset)
        staged.transform = transform
        if isinstance(getattr(dataset, "cache", None), FrameCache):
            log.info("data.cache: the %s stage frames every access; its transforms run before framing", stage)
            staged.cache = None
        return staged
