"""Recordings as sequences of a fixed number of sampled events (Event2Vec's input).

Every access samples anew (:mod:`event_lightning.data.loading.event_samplers`): a sampler picks
``sample_number`` events of the recording. Batches hold every sequence padded to ``sample_number``
in the bus dtypes, times in µs since each sequence's first event (the DataModule normalises them
on the device). :class:`EventFileDataset`
reads one file per item (the reference's data path); :class:`PackedEventDataset` gathers whole
batches from a :class:`~event_lightning.data.loading.packed_events.PackedEvents` cache. Both are
re-seeded per DataLoader worker by :func:`~event_lightning.data.loading.event_samplers.seed_worker`.

Both take a ``transform`` (a :class:`~event_lightning.data.loading.sample_transforms.SampleTransform`,
the user's ``data.train_transform`` / ``eval_transform``), run on each sequence's sampled events
after the sampler (the reference's augmentation) and before padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from event_lightning.data.loading.event_samplers import (
    PAD_VALUE,
    EventBatch,
    EventSample,
    make_sampler,
    pad_collate,
    relative_times,
    select_event_indices,
)
from event_lightning.data.loading.packed_events import EventReader, PackedEvents
from event_lightning.data.loading.sample_transforms import SampleTransform
from event_lightning.events.core import make_events

__all__ = ["EventFileDataset", "PackedEventDataset", "passthrough_collate"]


def _event_sample(chosen: np.ndarray, label: int) -> EventSample:
    """An :class:`EventSample` of the structured events ``chosen`` (fields x, y, t, p)."""
    return EventSample(
        x=torch.from_numpy(chosen["x"].astype(np.int64)),
        y=torch.from_numpy(chosen["y"].astype(np.int64)),
        t=torch.from_numpy(chosen["t"].astype(np.int64)),
        p=torch.from_numpy(chosen["p"].astype(np.int64)),
        label=label,
    )


class _Sampling:
    """What turns a recording into a sequence: sampler, length, its RNG."""

    def __init__(self, sampler: str, sample_number: int, seed: int | None) -> None:
        if sample_number < 1:
            raise ValueError(f"sample_number must be >= 1, found {sample_number}")
        self.sampler_name = sampler
        self.sampler = make_sampler(sampler)
        self.sample_number = sample_number
        self.rng = np.random.default_rng(torch.initial_seed() if seed is None else seed)

    def reseed(self, seed: int) -> None:
        """Give this copy of the dataset (one per DataLoader worker) its own generator."""
        self.rng = np.random.default_rng(seed)

    def indices(self, n: int) -> np.ndarray:
        return select_event_indices(self.sampler, self.rng, n, self.sample_number)


class EventFileDataset(Dataset):
    """One recording file per item, read on every access (the reference's data path).

    Item ``i`` is recording ``i % len(paths)`` (``repeats`` passes per epoch), sampled anew
    each time: an :class:`EventSample` of at most ``sample_number`` events; batch with
    :func:`pad_collate` to ``sample_number``.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        labels: np.ndarray,
        reader: EventReader,
        *,
        sampler: str = "random_sample",
        sample_number: int = 255,
        repeats: int = 1,
        seed: int | None = None,
    ) -> None:
        if len(paths) != len(labels) or not len(paths):
            raise ValueError(f"need one label per path and at least one path; found {len(paths)} / {len(labels)}")
        self.paths = list(paths)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.reader = reader
        self.repeats = repeats
        self.sampling = _Sampling(sampler, sample_number, seed)
        self.transform: SampleTransform | None = None

    def reseed(self, seed: int) -> None:
        self.sampling.reseed(seed)

    def __len__(self) -> int:
        return len(self.paths) * self.repeats

    def __getitem__(self, index: int) -> EventSample:
        item = index % len(self.paths)
        events = self.reader(self.paths[item])
        chosen = events[self.sampling.indices(len(events))]
        if self.transform is not None:
            chosen = self.transform(chosen, index, str(self.paths[item]))
        return _event_sample(chosen, int(self.labels[item]))


class PackedEventDataset(Dataset):
    """Recordings from a :class:`PackedEvents` cache, sampled anew on every access.

    ``sample_ids`` are the recordings of this split, ``labels`` their labels; item ``i`` is
    recording ``sample_ids[i % len(sample_ids)]`` (``repeats`` passes per epoch).  DataLoader
    batches go through :meth:`__getitems__`, which returns a padded :class:`EventBatch` directly
    (pass ``collate_fn=passthrough_collate``). ``files`` (one per recording of ``sample_ids``)
    name the recordings in a transform's errors.
    """

    def __init__(
        self,
        packed: PackedEvents,
        sample_ids: np.ndarray,
        labels: np.ndarray,
        *,
        sampler: str = "random_sample",
        sample_number: int = 255,
        repeats: int = 1,
        seed: int | None = None,
        files: Sequence[str] | None = None,
    ) -> None:
        if len(sample_ids) != len(labels) or not len(sample_ids):
            raise ValueError(f"need one label per recording and at least one; found {len(sample_ids)} / {len(labels)}")
        self.packed = packed
        self.sample_ids = np.asarray(sample_ids, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.repeats = repeats
        self.sampling = _Sampling(sampler, sample_number, seed)
        self.files = files
        self.transform: SampleTransform | None = None

    def reseed(self, seed: int) -> None:
        self.sampling.reseed(seed)

    def __len__(self) -> int:
        return len(self.sample_ids) * self.repeats

    def __getitems__(self, indices: Sequence[int]) -> EventBatch:
        """A padded batch of the items ``indices``: ``[B, sample_number]`` in the bus dtypes."""
        items = np.asarray(indices, dtype=np.int64) % len(self.sample_ids)
        recordings = self.sample_ids[items]
        starts = self.packed.offsets[recordings]
        counts = self.packed.offsets[recordings + 1] - starts
        chosen = [self.sampling.indices(int(n)) for n in counts]
        if self.transform is not None:
            return self._transformed_batch(indices, items, starts, chosen)
        lengths = np.array([len(c) for c in chosen], dtype=np.int64)
        valid = np.arange(self.sampling.sample_number)[None, :] < lengths[:, None]
        positions = np.concatenate([start + c for start, c in zip(starts, chosen, strict=True)])
        columns = self.packed.columns()

        def padded(field: str, dtype: type) -> np.ndarray:
            out = np.full(valid.shape, PAD_VALUE, dtype=dtype)
            out[valid] = columns[field][positions]
            return out

        return EventBatch(
            x=torch.from_numpy(padded("x", np.int16)),
            y=torch.from_numpy(padded("y", np.int16)),
            t=torch.from_numpy(relative_times(padded("t", np.int64), valid)),
            p=torch.from_numpy(padded("p", np.int8)),
            valid_mask=torch.from_numpy(valid),
            label=torch.from_numpy(self.labels[items]),
        )

    def _transformed_batch(
        self, indices: Sequence[int], items: np.ndarray, starts: np.ndarray, chosen: list[np.ndarray]
    ) -> EventBatch:
        """The batch with each sampled sequence run through ``transform`` first, one by one."""
        columns = self.packed.columns()
        samples = []
        for index, item, start, picked in zip(indices, items, starts, chosen, strict=True):
            positions = start + picked
            events = make_events(*(columns[field][positions] for field in ("x", "y", "t", "p")))
            origin = self.files[item] if self.files is not None else f"packed recording {self.sample_ids[item]}"
            samples.append(_event_sample(self.transform(events, index, origin), int(self.labels[item])))
        return pad_collate(samples, self.sampling.sample_number)

    def __getitem__(self, index: int) -> EventSample:
        """One sampled sequence without padding (times in µs since its first event)."""
        batch = self.__getitems__([index])
        n = int(batch.valid_mask[0].sum())
        x, y, t, p = (field[0, :n].long() for field in (batch.x, batch.y, batch.t, batch.p))
        return EventSample(x, y, t, p, int(batch.label[0]))


def passthrough_collate(batch: EventBatch) -> EventBatch:
    """``collate_fn`` for datasets whose ``__getitems__`` already returns a batch."""
    return batch
