"""Choosing a fixed number of events per sample, normalising their time, padding them into a batch.

Event2Vec feeds each recording to the network as a short sequence of events (255 for ASL-DVS).
A *sampler* picks which events: ``sampler(rng, n, sample_number) -> indices`` into the ``n``
events of one recording, as int64 in time order.  Recordings with fewer than ``sample_number``
events are kept whole and padded in the batch (:func:`select_event_indices`).

Batches are :class:`EventBatch` tuples of ``[B, L]`` tensors padded with -1 plus a ``valid_mask``
(True at real events), the layout of the Event2Vec reference's padding collate, always ``L =
sample_number`` long so that a compiled network sees one shape.  They cross the bus as small
integers (x, y int16, p int8, t int32 µs since each sequence's first event); the time
normalisation runs on the device (:func:`normalize_time`, called by the DataModule's
``on_after_batch_transfer``).
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
    "pad_collate",
    "random_chunk_sample",
    "random_sample",
    "relative_times",
    "seed_worker",
    "select_event_indices",
    "uniform_sample",
]

SamplerFn = Callable[[np.random.Generator, int, int], np.ndarray]
NORM_T_MODES = ("dataset-wise", "sample-wise", "none")
PAD_VALUE = -1


class EventSample(NamedTuple):
    """One sampled recording: 1-D tensors ``[L]``; ``t`` int64 µs, in time order."""

    x: torch.Tensor
    y: torch.Tensor
    t: torch.Tensor
    p: torch.Tensor
    label: int


class EventBatch(NamedTuple):
    """A padded batch of ``[B, L]`` tensors (padding -1), ``valid_mask`` bool ``[B, L]`` (True at real
    events) and ``label`` int64 ``[B]``.

    From the DataLoader: ``x, y`` int16, ``p`` int8, ``t`` int32 µs since each sequence's first event
    (int64 if a sequence spans more than 2^31 µs).  After :func:`normalize_time` on the device,
    ``t`` is float32 (int64 µs for ``norm_t="none"``), what the network reads.
    """

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


def relative_times(t: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Timestamps ``[B, L]`` (µs, each row in time order from slot 0) -> µs since each row's first
    event, padding -1, as int32 (int64 if a row spans more than 2^31 - 1 µs): the smallest exact
    integer type for the bus."""
    t = np.asarray(t, dtype=np.int64)
    relative = np.where(valid, t - t[:, :1], PAD_VALUE)
    fits = relative.size == 0 or relative.max() <= np.iinfo(np.int32).max
    return relative.astype(np.int32 if fits else np.int64)


def normalize_time(t: torch.Tensor, valid: torch.Tensor, mode: str, t_max: float | None = None) -> torch.Tensor:
    """Normalised timestamps of a batch, computed where ``t`` lives (the device, without host syncs).

    Args:
        t: ``[B, L]`` integer µs since each sequence's first event (:func:`relative_times`).
        valid: ``[B, L]`` bool, True at real events (a prefix of each row).
        mode: ``"dataset-wise"`` (``t / t_max``: t_max is the longest training recording, so t lies in
            [0, 1]), ``"sample-wise"`` (``t / t[last]``; zeros when a sequence spans no time) or
            ``"none"`` (int64 µs).
        t_max: required for ``"dataset-wise"``, in µs.

    Returns:
        ``[B, L]`` float32 (int64 for ``"none"``), padding slots -1.  The float division is the
        float32 one of the reference (``t.astype(float32) / float32(scale)``) bit for bit: it
        divides by a tensor, never by a scalar, which CUDA would turn into a multiplication by
        the reciprocal.
    """
    if mode not in NORM_T_MODES:
        raise ValueError(f"norm_t must be one of {NORM_T_MODES}, found {mode!r}")
    if mode == "dataset-wise" and (t_max is None or t_max <= 0):
        raise ValueError(f"norm_t='dataset-wise' needs a positive t_max in µs, found {t_max!r}")
    if mode == "none":
        return torch.where(valid, t.long(), PAD_VALUE)
    if mode == "sample-wise":
        last_slot = (valid.sum(dim=1, keepdim=True) - 1).clamp_min(0)
        last = t.gather(1, last_slot)
        scale = torch.where(last > 0, last, 1).float()
    else:
        scale = torch.full((), t_max, dtype=torch.float32, device=t.device)
    return torch.where(valid, t.float() / scale, float(PAD_VALUE))


def pad_collate(samples: Sequence[EventSample], length: int) -> EventBatch:
    """Stack samples of up to ``length`` events into an :class:`EventBatch` padded with -1 to ``length``
    (the same shape for every batch), in the bus dtypes; an empty sample is a row of padding."""
    lengths = torch.tensor([len(s.x) for s in samples], dtype=torch.int64)
    if len(samples) and int(lengths.max()) > length:
        raise ValueError(f"a sample holds {int(lengths.max())} events, more than the batch length {length}")
    valid = torch.arange(length)[None, :] < lengths[:, None]

    def padded(field: str, dtype: torch.dtype) -> torch.Tensor:
        out = torch.full((len(samples), length), PAD_VALUE, dtype=dtype)
        if len(samples):
            out[valid] = torch.cat([getattr(s, field).to(dtype) for s in samples])
        return out

    t = padded("t", torch.int64)
    return EventBatch(
        x=padded("x", torch.int16),
        y=padded("y", torch.int16),
        t=torch.from_numpy(relative_times(t.numpy(), valid.numpy())),
        p=padded("p", torch.int8),
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
