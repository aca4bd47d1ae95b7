"""Fixed-length windows of per-recording frame stacks, batched time-first (the HG-VAE loaders).

The HG-VAE DataModules (:mod:`event_lightning.data.datasets.dvsgesture`,
:mod:`event_lightning.data.datasets.nmnist`'s ``NMNISTDataModule``) frame a whole recording once
(cached by :class:`~event_lightning.data.loading.frame_cache.FrameCache`) and cut a window of
``n_time_steps`` frames from it afterwards: :func:`window_start` picks where (at random per access
for training), :func:`crop_window` cuts and zero-pads, :func:`time_first_collate` stacks the sample
dicts into ``frames [T, B, P, H, W]`` uint8/int16 counts, :func:`window_loader` is the DataLoader
they share and :func:`frames_to_float` their ``on_after_batch_transfer`` (float32 on the device).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from event_lightning.data.loading.bad_samples import BadSampleLedger, BadSamplePolicy, IndexedFiles, guard_loader
from event_lightning.data.loading.frame_cache import compact_integer_dtype
from event_lightning.data.loading.loaders import LoaderSettings, build_loader
from event_lightning.data.loading.sample_transforms import EpochCounter, EpochCountingSampler
from event_lightning.data.loading.splits import class_mixed_order

__all__ = [
    "crop_window",
    "evaluation_order_files",
    "frames_to_float",
    "time_first_collate",
    "window_loader",
    "window_start",
]


def window_start(n_frames: int, length: int, *, random: bool, start_limit: float = 1.0, generator=None) -> int:
    """First frame of a ``length``-frame window in a stack of ``n_frames``.

    With ``random``, uniform over ``[0, max(0, n_frames - start_limit * length)]`` (``start_limit = 1``
    allows every full window; the HG-VAE reference uses 2, never starting in the last two window
    lengths); otherwise 0. Draws from torch's generator, which DataLoader workers seed per worker.
    """
    if not random:
        return 0
    high = max(0, int(n_frames - start_limit * length))
    return int(torch.randint(0, high + 1, (1,), generator=generator))


def crop_window(frames: np.ndarray, start: int, length: int) -> np.ndarray:
    """``frames[start:start + length]`` as a new array, zero-padded at the end when too short."""
    window = np.asarray(frames[start : start + length])
    if window.shape[0] == length:
        return np.array(window)
    padded = np.zeros((length, *frames.shape[1:]), dtype=frames.dtype)
    padded[: window.shape[0]] = window
    return padded


def window_loader(
    dataset: Dataset,
    settings: LoaderSettings,
    trainer: pl.Trainer | None,
    *,
    on_bad_sample: BadSamplePolicy = "raise",
    train: bool,
    shuffle: bool,
    bad_samples: BadSampleLedger | None = None,
    stage: str | None = None,
    files: list[str] | None = None,
    labels: Sequence[int] | None = None,
    epoch_counter: EpochCounter | None = None,
) -> DataLoader:
    """The HG-VAE DataModules' loader (``settings`` resolved for ``trainer``, see
    :mod:`event_lightning.data.loading.loaders`): time-first dict batches; the last partial
    training batch is dropped because BatchNorm in the guides needs more than one sample.

    With ``on_bad_sample == "skip"`` (and a ``bad_samples`` ledger) bad samples are dropped from
    their batch and recorded under ``stage``; ``files`` names each sample's file. A training
    batch that loses samples this way is kept even when it ends up with a single sample.

    ``labels`` (each sample's class) make an unshuffled loader serve the samples in a fixed
    class-mixed order (:func:`~event_lightning.data.loading.splits.class_mixed_order`) instead of
    the file order, which lists one class after the other. A shuffled loader hands each epoch to
    ``epoch_counter`` (the training transforms' generators, see
    :mod:`event_lightning.data.loading.sample_transforms`).
    """
    collate = time_first_collate
    if not shuffle and labels is not None:
        dataset = Subset(dataset, class_mixed_order(labels).tolist())
        files = evaluation_order_files(files, labels) if files else files
    if bad_samples is not None:
        origin = IndexedFiles(files) if files else None
        dataset, collate = guard_loader(dataset, collate, on_bad_sample, bad_samples, stage or "train", origin)
    sampler = EpochCountingSampler(dataset, epoch_counter) if shuffle else None
    return build_loader(dataset, settings, trainer, sampler=sampler, collate_fn=collate, drop_last=train)


def evaluation_order_files(files: Sequence[str], labels: Sequence[int]) -> list[str]:
    """``files`` in the order an unshuffled :func:`window_loader` given ``labels`` serves them (what
    a predict loader's dataset index refers to)."""
    return [files[i] for i in class_mixed_order(labels).tolist()]


def time_first_collate(samples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack sample dicts; ``frames [T, P, H, W]`` (integer counts) become ``[T, B, P, H, W]`` counts
    in the smallest integer dtype that holds them
    (:func:`~event_lightning.data.loading.frame_cache.compact_integer_dtype`).

    Counts cross the bus as uint8 (int16 when a bin holds more than 255 events): a quarter (half)
    of float32's bytes. The model converts them to float on the device.
    """
    if not samples:
        raise ValueError("time_first_collate: empty batch")
    batch = {key: torch.as_tensor(np.stack([s[key] for s in samples])) for key in samples[0] if key != "frames"}
    frames = np.stack([s["frames"] for s in samples])
    frames = frames.astype(compact_integer_dtype(frames), copy=False)
    batch["frames"] = torch.from_numpy(frames).transpose(0, 1).contiguous()
    return batch


def frames_to_float(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch with its ``frames`` counts as float32: the HG-VAE DataModules'
    ``on_after_batch_transfer``, so the conversion runs on the device after a uint8/int16 copy."""
    return {**batch, "frames": batch["frames"].to(torch.float32)}
