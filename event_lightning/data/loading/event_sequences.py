"""Recordings as sequences of a fixed number of sampled events (Event2Vec's input).

Every access samples anew (:mod:`event_lightning.data.loading.event_samplers`): a sampler picks
``sample_number`` events of the recording and their time is normalised. :class:`EventFileDataset`
reads one file per item (the reference's data path); :class:`PackedEventDataset` gathers whole
batches from a :class:`~event_lightning.data.loading.packed_events.PackedEvents` cache. Both are
re-seeded per DataLoader worker by :func:`~event_lightning.data.loading.event_samplers.seed_worker`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from event_lightning.data.loading.event_samplers import (
    NORM_T_MODES,
    EventBatch,
    EventSample,
    make_sampler,
    normalize_time_batch,
    select_event_indices,
)
from event_lightning.data.loading.packed_events import EventReader, PackedEvents

__all__ = ["EventFileDataset", "PackedEventDataset", "passthrough_collate"]


class _Sampling:
    """What turns a recording into a sequence: sampler, length, time normalisation, its RNG."""

    def __init__(self, sampler: str, sample_number: int, norm_t: str, t_max: float | None, seed: int | None) -> None:
        if norm_t not in NORM_T_MODES:
            raise ValueError(f"norm_t must be one of {NORM_T_MODES}, found {norm_t!r}")
        if norm_t == "dataset-wise" and (t_max is None or t_max <= 0):
            raise ValueError(f"norm_t='dataset-wise' needs a positive t_max (µs), found {t_max!r}")
        if sample_number < 1:
            raise ValueError(f"sample_number must be >= 1, found {sample_number}")
        self.sampler_name = sampler
        self.sampler = make_sampler(sampler)
        self.sample_number = sample_number
        self.norm_t = norm_t
        self.t_max = t_max
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
    :func:`pad_collate`.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        labels: np.ndarray,
        reader: EventReader,
        *,
        sampler: str = "random_sample",
        sample_number: int = 255,
        norm_t: str = "dataset-wise",
        t_max: float | None = None,
        repeats: int = 1,
        seed: int | None = None,
    ) -> None:
        if len(paths) != len(labels) or not len(paths):
            raise ValueError(f"need one label per path and at least one path; found {len(paths)} / {len(labels)}")
        self.paths = list(paths)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.reader = reader
        self.repeats = repeats
        self.sampling = _Sampling(sampler, sample_number, norm_t, t_max, seed)

    def reseed(self, seed: int) -> None:
        self.sampling.reseed(seed)

    def __len__(self) -> int:
        return len(self.paths) * self.repeats

    def __getitem__(self, index: int) -> EventSample:
        item = index % len(self.paths)
        events = self.reader(self.paths[item])
        chosen = events[self.sampling.indices(len(events))]
        t = normalize_time_batch(chosen["t"][None], np.array([len(chosen)]), self.sampling.norm_t, self.sampling.t_max)
        return EventSample(
            x=torch.from_numpy(chosen["x"].astype(np.int64)),
            y=torch.from_numpy(chosen["y"].astype(np.int64)),
            t=torch.from_numpy(t[0]),
            p=torch.from_numpy(chosen["p"].astype(np.int64)),
            label=int(self.labels[item]),
        )


class PackedEventDataset(Dataset):
    """Recordings from a :class:`PackedEvents` cache, sampled anew on every access.

    ``sample_ids`` are the recordings of this split, ``labels`` their labels; item ``i`` is
    recording ``sample_ids[i % len(sample_ids)]`` (``repeats`` passes per epoch).  DataLoader
    batches go through :meth:`__getitems__`, which returns a padded :class:`EventBatch` directly
    (pass ``collate_fn=passthrough_collate``).
    """

    def __init__(
        self,
        packed: PackedEvents,
        sample_ids: np.ndarray,
        labels: np.ndarray,
        *,
        sampler: str = "random_sample",
        sample_number: int = 255,
        norm_t: str = "dataset-wise",
        t_max: float | None = None,
        repeats: int = 1,
        seed: int | None = None,
    ) -> None:
        if len(sample_ids) != len(labels) or not len(sample_ids):
            raise ValueError(f"need one label per recording and at least one; found {len(sample_ids)} / {len(labels)}")
        self.packed = packed
        self.sample_ids = np.asarray(sample_ids, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.repeats = repeats
        self.sampling = _Sampling(sampler, sample_number, norm_t, t_max, seed)

    def reseed(self, seed: int) -> None:
        self.sampling.reseed(seed)

    def __len__(self) -> int:
        return len(self.sample_ids) * self.repeats

    def __getitems__(self, indices: Sequence[int]) -> EventBatch:
        """A padded batch of the items ``indices``: ``[B, L]`` with ``L`` the longest sampled length."""
        items = np.asarray(indices, dtype=np.int64) % len(self.sample_ids)
        recordings = self.sample_ids[items]
        starts = self.packed.offsets[recordings]
        counts = self.packed.offsets[recordings + 1] - starts
        chosen = [self.sampling.indices(int(n)) for n in counts]
        lengths = np.array([len(c) for c in chosen], dtype=np.int64)
        length = int(lengths.max()) if len(lengths) else 0
        valid = np.arange(length)[None, :] < lengths[:, None]
        positions = np.concatenate([start + c for start, c in zip(starts, chosen, strict=True)]) if length else []
        columns = self.packed.columns()

        def padded(field: str) -> np.ndarray:
            out = np.full(valid.shape, -1, dtype=np.int64)
            out[valid] = columns[field][positions]
            return out

        t = normalize_time_batch(padded("t"), lengths, self.sampling.norm_t, self.sampling.t_max)
        return EventBatch(
            x=torch.from_numpy(padded("x")),
            y=torch.from_numpy(padded("y")),
            t=torch.from_numpy(t),
            p=torch.from_numpy(padded("p")),
            valid_mask=torch.from_numpy(valid),
            label=torch.from_numpy(self.labels[items]),
        )

    def __getitem__(self, index: int) -> EventSample:
        batch = self.__getitems__([index])
        return EventSample(batch.x[0], batch.y[0], batch.t[0], batch.p[0], int(batch.label[0]))


def passthrough_collate(batch: EventBatch) -> EventBatch:
    """``collate_fn`` for datasets whose ``__getitems__`` already returns a batch."""
    return batch
