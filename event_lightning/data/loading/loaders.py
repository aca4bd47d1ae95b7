"""DataLoader settings every DataModule shares, and the one function that builds their loaders.

* ``num_workers: "auto"`` (the default): on a GPU run, the CPUs of this process
  (:func:`cpus_per_process`) minus one for the process itself, at most :data:`MAX_AUTO_WORKERS`.
  On a CPU run, 0: the training step already uses every core, and a worker would take them from
  it (measured on a 2-core box: the quickstart ran ~10 % slower with one worker). Without a
  trainer (a DataModule iterated by hand) also 0.
* ``pin_memory: "auto"`` (the default): pinned when the trainer runs on a CUDA device, so the
  host-to-device copy of a batch runs asynchronously; off otherwise (pinning would be one more
  copy for nothing).
* ``persistent_workers``: workers live across epochs whenever there are workers.
* Under DDP a training sampler that counts epochs for the transforms (:class:`EpochCountingSampler`)
  becomes its distributed twin (:func:`training_sampler`), which Lightning keeps.

Batches should cross the bus small: integer counts (uint8 / int16) or sparse entries, made float
on the device in the DataModule's ``on_after_batch_transfer`` or the model.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset, Sampler

from event_lightning.data.loading.sample_transforms import EpochCountingDistributedSampler, EpochCountingSampler

__all__ = [
    "AUTO",
    "MAX_AUTO_WORKERS",
    "LoaderSettings",
    "build_loader",
    "cpus_per_process",
    "training_sampler",
    "usable_cpus",
]

AUTO = "auto"
MAX_AUTO_WORKERS = 8


@dataclass(frozen=True)
class LoaderSettings:
    """What a DataModule's loaders share (its ``data.*`` settings).

    Args:
        batch_size: samples per batch (>= 1).
        num_workers: worker processes, or ``"auto"`` (see the module docstring).
        pin_memory: ``True``, ``False`` or ``"auto"`` (pinned when training on CUDA).
        persistent_workers: keep workers across epochs (only with workers).
        prefetch_factor: batches each worker loads ahead (only with workers; None = torch's 2).
    """

    batch_size: int
    num_workers: int | Literal["auto"] = AUTO
    pin_memory: bool | Literal["auto"] = AUTO
    persistent_workers: bool = True
    prefetch_factor: int | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, found {self.batch_size}")
        if self.num_workers != AUTO and (not isinstance(self.num_workers, int) or self.num_workers < 0):
            raise ValueError(f"data.num_workers must be >= 0 or 'auto', found {self.num_workers!r}")
        if self.pin_memory not in (True, False, AUTO):
            raise ValueError(f"data.pin_memory must be true, false or 'auto', found {self.pin_memory!r}")
        if self.prefetch_factor is not None and self.prefetch_factor < 1:
            raise ValueError(f"data.prefetch_factor must be >= 1, found {self.prefetch_factor}")

    def workers(self, trainer: pl.Trainer | None) -> int:
        """The number of worker processes for a loader used by ``trainer`` (see the module docstring)."""
        if self.num_workers != AUTO:
            return int(self.num_workers)
        if not _on_gpu(trainer):
            return 0
        return max(0, min(MAX_AUTO_WORKERS, cpus_per_process(trainer.num_devices) - 1))

    def pinned(self, trainer: pl.Trainer | None) -> bool:
        """Whether a loader used by ``trainer`` pins its batches."""
        return _on_gpu(trainer) if self.pin_memory == AUTO else bool(self.pin_memory)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpus_per_process(devices: int) -> int:
    """The CPUs one training process of this node may count on, with ``devices`` processes per node.

    The CPUs this process may run on are shared by the node's ``devices`` training processes
    (Lightning and torchrun start them all with the same affinity), except when SLURM started one
    task per device with its own ``--cpus-per-task``: then each process has that many.
    """
    slurm_cpus = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm_cpus.isdigit() and os.environ.get("SLURM_NTASKS_PER_NODE") == str(devices):
        return min(usable_cpus(), int(slurm_cpus))
    return usable_cpus() // max(1, devices)


def _on_gpu(trainer: pl.Trainer | None) -> bool:
    return trainer is not None and trainer.strategy.root_device.type == "cuda"


def build_loader(
    dataset: Dataset,
    settings: LoaderSettings,
    trainer: pl.Trainer | None,
    *,
    shuffle: bool = False,
    sampler: Sampler | None = None,
    drop_last: bool = False,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    worker_init_fn: Callable[[int], None] | None = None,
) -> DataLoader:
    """A DataLoader over ``dataset`` with ``settings`` resolved for ``trainer`` (None: no trainer)."""
    workers = settings.workers(trainer)
    return DataLoader(
        dataset,
        batch_size=settings.batch_size,
        shuffle=shuffle,
        sampler=training_sampler(sampler, dataset, trainer),
        drop_last=drop_last,
        collate_fn=collate_fn,
        worker_init_fn=worker_init_fn,
        num_workers=workers,
        pin_memory=settings.pinned(trainer),
        persistent_workers=settings.persistent_workers and workers > 0,
        prefetch_factor=settings.prefetch_factor if workers > 0 else None,
    )


def training_sampler(sampler: Sampler | None, dataset: Dataset, trainer: pl.Trainer | None) -> Sampler | None:
    """``sampler``, or under DDP, when it counts epochs for the transforms, its distributed twin.

    Lightning swaps a DDP loader's ``RandomSampler`` for a ``DistributedSampler`` of its own
    (``use_distributed_sampler``) and then calls ``set_epoch`` on that one only, so the
    :class:`EpochCountingSampler` would never hear of an epoch again. An
    :class:`EpochCountingDistributedSampler` built with Lightning's arguments (ranks, seed, shuffle)
    takes its place: Lightning leaves a ``DistributedSampler`` in place and sets its epoch on every
    rank at every epoch start, also after a resume. Without DDP, or with ``use_distributed_sampler:
    false`` (the user shards), ``sampler`` is returned unchanged.
    """
    if not isinstance(sampler, EpochCountingSampler) or trainer is None:
        return sampler
    # Lightning's own test (DataConnector._requires_distributed_sampler); the flag has no public getter
    connector = trainer._accelerator_connector
    if not (connector.use_distributed_sampler and connector.is_distributed):
        return sampler
    shards = trainer.distributed_sampler_kwargs or {}
    return EpochCountingDistributedSampler(
        dataset, sampler.epoch_counter, shuffle=not trainer.overfit_batches, **shards
    )
