"""Choosing a fixed number of events per sample, normalising their time, padding them into a batch.

Event2Vec feeds each recording to the network as a short sequence of events (255 for ASL-DVS).
A *sampler* picks which events: ``sampler(rng, n, sample_number) -> indices`` into the ``n``
events of one recording, as int64 in time order.  Recordings with fewer than ``sample_number``
events are kept whole and padded in the batch (:func:`select_event_indices`).

Batches are :class:`EventBatch` tuples of ``[B, L]`` tensors padded with -1 plus a ``valid_mask``
(True at real events), the layout of the Event2Vec reference's padding collate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

import numpy as np
import torch

__all__ = [
    "NORM_T_MODES",
    "SAMPLER_NAMES",
    "EventBatch",
    "EventSample",
    "Reseedable",
    "SamplerFn",
    "deterministic_uniform_sample",
    "gaussian_sample",
    "make_sampler",
    "multivariate_gaussian_sample",
    "normalize_time",
    "normalize_time_batch",
    "pad_collate",
    "random_chunk_sample",
    "random_sample",
    "seed_worker",
    "select_event_indices",
    "uniform_sample",
]

SamplerFn = Callable[[np.random.Generator, int, int], np.ndarray]
NORM_T_MODES = ("dataset-wise", "sample-wise", "none")
PAD_VALUE = -1


class EventSample(NamedTuple):
    """One sampled recording: 1-D tensors ``[L]``; ``t`` float32 (normalised) or int64 (µs)."""

    x: torch.Tensor
    y: torch.Tensor
    t: torch.Tensor
    p: torch.Tensor
    label: int


class EventBatch(NamedTuple):
    """A padded batch: ``x, y, p`` int64 ``[B, L]``, ``t`` float32 or int64 ``[B, L]`` (padding -1),
    ``valid_mask`` bool ``[B, L]`` (True at real events), ``label`` int64 ``[B]``."""

    x: torch.Tensor
    y: torch.Tensor
    t: torch.Tensor
    p: torch.Tensor
    valid_mask: torch.Tensor
    label: torch.Tensor


def random_sample(rng: np.random.Generator, n: int, sample_number: int) -> np.ndarray:
    """``sample_number`` distinct indices of ``[0, n)``, uniformly without replacement, sorted."""
    indices = rng.choice(n, size=sample_number, replace=False)
    indices.sort()
    return indices.astype(np.int64, copy=False)


def uniform_sample(rng: np.random.Generator, n: int, sample_number: int) -> np.ndarray:
    """``sample_number`` uniform indices of ``[0, n)`` with replacement (repeats possible), sorted.

    The reference draws from ``[0, n - 1)`` and so never picks the last event; here every event can
    be drawn.
    """
    indices = rng.integers(0, n, size=sample_number, dtype=np.int64)
    indices.sort()
    return indices


def deterministic_uniform_sample(rng: np.random.Generator, n: int, sample_number: int) -> np.ndarray:
    """Evenly spaced indices ``floor(linspace(0, n - 1, sample_number))``; ``rng`` is unused."""
    return np.linspace(0, n - 1, sample_number).astype(np.int64)


def gaussian_sample(rng: np.random.Generator, n: int, sample_number: int) -> np.ndarray:
    """Indices drawn from N(n/2, (n/4)^2), clipped to ``[0, n - 1]``, floored, sorted; repeats possible."""
    indices = rng.normal(loc=n / 2, scale=n / 4, size=sample_number)
    np.clip(indices, 0, n - 1, out=indices)
    indices.sort()
    return indices.astype(np.int64)


def multivariate_gaussian_sample(rng: np.random.Generator, n: int, sample_number: int) -> np.ndarray:
    """One index per bin ``i``: N(i n / S, (n / (4 S))^2), clipped, floored and sorted."""
    mean = np.arange(sample_number) * (n / sample_number)
    indices = rng.normal(loc=mean, scale=n / sample_number / 4)
    np.clip(indices, 0, n - 1, out=indices)
    indices.sort()
    return indices.astype(np.int64)


def random_chunk_sample(rng: np.random.Generator, n: int, sample_number: int, chunk_size: int) -> np.ndarray:
    """Runs of ``chunk_size`` consecutive events at random, non-overlapping places, in time order.

    ``sample_number // chunk_size`` full runs plus one shorter run for the remainder, so exactly
    ``sample_number`` distinct sorted indices.  Placement is uniform over all non-overlapping
    layouts: choose ``k`` sorted distinct values ``v`` in ``[0, n - sample_number + k)`` and start
    run ``i`` at ``v_i - i + (events in runs before i)``.  (The reference draws run starts
    independently, so its runs may overlap and repeat events.)
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, found {chunk_size}")
    full, remainder = divmod(sample_number, chunk_size)
    run_lengths = np.full(full + (remainder > 0), chunk_size, dtype=np.int64)
    if remainder:
        run_lengths[-1] = remainder
    k = len(run_lengths)
    values = np.sort(rng.choice(n - sample_number + k, size=k, replace=False)).astype(np.int64)
    starts = values - np.arange(k) + np.concatenate(([0], np.cumsum(run_lengths)[:-1]))
    # Expand each run start into its consecutive indices without a Python loop.
    run_of_slot = np.repeat(np.arange(k), run_lengths)
    offset_in_run = np.arange(sample_number) - np.repeat(np.cumsum(run_lengths) - run_lengths, run_lengths)
    return starts[run_of_slot] + offset_in_run


_SAMPLERS: dict[str, SamplerFn] = {
    "random_sample": random_sample,
    "uniform_sample": uniform_sample,
    "deterministic_uniform_sample": deterministic_uniform_sample,
    "gaussian_sample": gaussian_sample,
    "multivariate_gaussian_sample": multivariate_gaussian_sample,
}
SAMPLER_NAMES = (*_SAMPLERS, "random_chunk_sample_<c>")


class _ChunkSampler:
    """A picklable ``random_chunk_sample`` with its chunk size bound (DataLoader workers pickle it)."""

    def __init__(self, chunk_size: int) -> None:
        self.chunk_size = chunk_size

    def __call__(self, rng: np.random.Generator, n: int, sample_number: int) -> np.ndarray:
        return random_chunk_sample(rng, n, sample_number, self.chunk_size)


def make_sampler(name: str) -> SamplerFn:
    """The sampler called ``name``: one of :data:`SAMPLER_NAMES` (``random_chunk_sample_10``: runs of 10)."""
    if name in _SAMPLERS:
        return _SAMPLERS[name]
    prefix = "random_chunk_sample_"
    if name.startswith(prefix) and name[len(prefix) :].isdigit() and int(name[len(prefix) :]) > 0:
        return _ChunkSampler(int(name[len(prefix) :]))
    raise ValueError(f"unknown sampler {name!r}; choose one of {SAMPLER_NAMES}")


def select_event_indices(sampler: SamplerFn, rng: np.random.Generator, n: int, sample_number: int) -> np.ndarray:
    """Indices of the events to keep from a recording of ``n`` events.

    ``sampler`` runs when ``n >= sample_number`` (as in the reference); shorter recordings are kept
    whole (``arange(n)``) and padded later.
    """
    if n >= sample_number:
        return sampler(rng, n, sample_number)
    return np.arange(n, dtype=np.int64)


def normalize_time_batch(t: np.ndarray, lengths: np.ndarray, mode: str, t_max: float | None = None) -> np.ndarray:
    """Timestamps of sampled sequences, relative to each sequence's first event, normalised.

    Args:
        t: ``[B, L]`` timestamps in µs, row ``b`` valid in its first ``lengths[b]`` slots (in time
            order), anything after that is padding.
        lengths: ``[B]`` number of real events per row.
        mode: ``"dataset-wise"`` (``t / t_max`` as float32: t_max is the longest training
            recording, so t lies in [0, 1]), ``"sample-wise"`` (``t / t[last]``, float32; zeros when
            a sequence spans no time) or ``"none"`` (int64 µs).
        t_max: required for ``"dataset-wise"``, in µs.

    Returns:
        ``[B, L]`` float32 (int64 for ``"none"``), padding slots set to -1.
    """
    t = np.asarray(t, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if mode not in NORM_T_MODES:
        raise ValueError(f"norm_t must be one of {NORM_T_MODES}, found {mode!r}")
    if mode == "dataset-wise" and (t_max is None or t_max <= 0):
        raise ValueError(f"norm_t='dataset-wise' needs a positive t_max in µs, found {t_max!r}")
    valid = np.arange(t.shape[1])[None, :] < lengths[:, None]
    relative = t - t[:, :1] if t.shape[1] else t
    if mode == "none":
        return np.where(valid, relative, PAD_VALUE)
    if mode == "sample-wise":
        last = np.take_along_axis(relative, np.maximum(lengths - 1, 0)[:, None], axis=1) if t.shape[1] else relative
        scale = np.where(last > 0, last, 1).astype(np.float32)
    else:
        scale = np.float32(t_max)
    out = relative.astype(np.float32) / scale
    return np.where(valid, out, np.float32(PAD_VALUE)).astype(np.float32)


def normalize_time(t: np.ndarray, mode: str, t_max: float | None = None) -> np.ndarray:
    """:func:`normalize_time_batch` for one sampled sequence ``[L]`` (µs, in time order)."""
    t = np.asarray(t, dtype=np.int64)
    return normalize_time_batch(t[None], np.array([len(t)]), mode, t_max)[0]


def pad_collate(samples: Sequence[EventSample]) -> EventBatch:
    """Stack samples of different lengths into an :class:`EventBatch` padded with -1.

    The batch length is the longest sample; ``valid_mask`` marks real events (an empty sample is
    a row of padding).
    """
    lengths = torch.tensor([len(s.x) for s in samples], dtype=torch.int64)
    length = int(lengths.max()) if len(samples) else 0
    valid = torch.arange(length)[None, :] < lengths[:, None]

    def padded(field: str, dtype: torch.dtype) -> torch.Tensor:
        out = torch.full((len(samples), length), PAD_VALUE, dtype=dtype)
        if length:
            out[valid] = torch.cat([getattr(s, field).to(dtype) for s in samples])
        return out

    t_dtype = samples[0].t.dtype if len(samples) else torch.float32
    return EventBatch(
        x=padded("x", torch.int64),
        y=padded("y", torch.int64),
        t=padded("t", t_dtype),
        p=padded("p", torch.int64),
        valid_mask=valid,
        label=torch.tensor([int(s.label) for s in samples], dtype=torch.int64),
    )


class Reseedable(Protocol):
    """A dataset whose sampling generator DataLoader workers re-seed."""

    def reseed(self, seed: int) -> None: ...


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: give each worker's dataset its own numpy Generator.

    The seed is the worker's ``torch.initial_seed()`` (the loader's base seed plus the worker id),
    so workers draw different events, the draws change whenever the loader re-creates its
    workers (every epoch unless ``persistent_workers``), and a run is repeatable under
    ``seed_everything``.
    """
    info = torch.utils.data.get_worker_info()
    if info is not None and hasattr(info.dataset, "reseed"):
        info.dataset.reseed(torch.initial_seed())
