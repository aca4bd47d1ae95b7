"""N-MNIST for the Hybrid Guided VAE: the first 100 ms in 1-ms bins, cropped to 32x32.

As the reference loader (torchneuromorphic's N-MNIST): events with ``x >= 32`` or ``y >= 32``
are DISCARDED (a crop, no shift, no rescale) from the 34x34 sensor, the first ``n_time_steps``
bins of ``dt_us`` from ``t = 0`` are kept (100 ms: about the first saccade), no random window.
The real data comes through tonic's ``NMNIST`` download (``<root>/NMNIST/Train/<digit>/*.bin``);
the synthetic stand-in is :func:`event_lightning.data.synthetic_digits.generate_synthetic_nmnist`
written to the same place and read by the same reader (:func:`read_nmnist_bin`). Unlike the
reference, the class-balanced subset of its HDF5 builder is not reproduced: all files are used.

Batches are dicts: ``frames [T, B, 2, 32, 32]`` float32, ``target`` and ``label`` [B] int64.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset

from event_lightning.data.bad_samples import BadSampleLedger, BadSamplePolicy, check_bad_sample_policy
from event_lightning.data.config_checks import check_window_fits, first_readable
from event_lightning.data.dvsgesture import window_loader
from event_lightning.data.frame_cache import FrameCache, crop_window
from event_lightning.data.synthetic_digits import (
    SyntheticDigitsConfig,
    generate_synthetic_nmnist,
    read_synthetic_nmnist_split,
)
from event_lightning.events import augment
from event_lightning.events.core import SensorSize
from event_lightning.events.formats.nmnist import NMNIST_SENSOR_SIZE, read_nmnist_bin
from event_lightning.events.represent import to_frame

__all__ = ["NMNISTDataModule", "NMNISTFrameDataset", "nmnist_frames"]

FRAMES_CODE_VERSION = "nmnist-frames-1"
NUM_CLASSES = 10


def nmnist_frames(path: str | os.PathLike, crop: int, dt_us: int, n_time_steps: int) -> np.ndarray:
    """``(n_time_steps, 2, crop, crop)`` int16 counts of one ``.bin`` file: events outside ``crop``
    dropped, bins of ``dt_us`` from ``t = 0``, zero-padded when the recording is shorter."""
    events = read_nmnist_bin(path, allow_empty=True)
    events, sensor = augment.crop(events, NMNIST_SENSOR_SIZE, x0=0, y0=0, width=crop, height=crop)
    events = events[events["t"] < dt_us * n_time_steps]
    frames = to_frame(events, sensor, time_window=dt_us, start_time=0, include_incomplete=True)
    return crop_window(frames, 0, n_time_steps)


class NMNISTFrameDataset(Dataset):
    """``{"frames": (T, 2, crop, crop) counts, "target", "label"}`` per ``.bin`` file."""

    def __init__(
        self, samples: list[tuple[Path, int]], *, crop: int, dt_us: int, n_time_steps: int, cache: FrameCache | None
    ) -> None:
        self.samples, self.crop, self.dt_us, self.n_time_steps, self.cache = samples, crop, dt_us, n_time_steps, cache

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path, label = self.samples[index]
        build = lambda: nmnist_frames(path, self.crop, self.dt_us, self.n_time_steps)  # noqa: E731
        frames = build() if self.cache is None else np.array(self.cache.load(index, build))
        return {"frames": frames, "target": np.int64(label), "label": np.int64(label)}


class NMNISTDataModule(pl.LightningDataModule):
    """N-MNIST (or the synthetic digits) as HG-VAE inputs; validation = test split.

    Args:
        root: tonic's ``save_to``: the files live in ``<root>/NMNIST/{Train,Test}/<digit>/*.bin``.
        synthetic: write (once) and read the synthetic digits there instead of the real set.
        synthetic_config: fields of :class:`SyntheticDigitsConfig`.
        download: let tonic download the real set into ``root`` when missing.
        crop: keep events with ``x, y < crop`` (32 for the HG-VAE's 32x32 input).
        dt_us / n_time_steps: bin width and number of bins from ``t = 0``.
        cache: cache frames under ``cache_dir`` (default ``<root>/cache``); ~200 KB per sample.
        on_bad_sample: ``raise`` (default) or ``skip`` an unreadable ``.bin`` file: it is dropped from
            its batch and recorded in ``bad_samples`` (see :mod:`event_lightning.data.bad_samples`).
    """

    def __init__(
        self,
        root: str = "datasets",
        synthetic: bool = False,
        synthetic_config: dict[str, Any] | None = None,
        download: bool = False,
        crop: int = 32,
        dt_us: int = 1000,
        n_time_steps: int = 100,
        cache: bool = False,
        cache_dir: str | None = None,
        batch_size: int = 60,
        num_workers: int = 0,
        pin_memory: bool = False,
        on_bad_sample: BadSamplePolicy = "raise",
    ) -> None:
        super().__init__()
        check_bad_sample_policy(on_bad_sample)
        for name, value in (
            ("crop", crop),
            ("dt_us", dt_us),
            ("n_time_steps", n_time_steps),
            ("batch_size", batch_size),
        ):
            if value < 1:
                raise ValueError(f"data.{name} must be >= 1, found {value}")
        self.save_hyperparameters()
        self.root = Path(root)
        self.synthetic_config = SyntheticDigitsConfig(**(synthetic_config or {})) if synthetic else None
        self.sensor_size = SensorSize(crop, crop, 2)
        self.num_classes = NUM_CLASSES
        self.n_time_steps = n_time_steps
        self.class_names = [str(i) for i in range(NUM_CLASSES)]
        self._splits: dict[bool, NMNISTFrameDataset] = {}
        self.bad_samples = BadSampleLedger()

    @property
    def data_dir(self) -> Path:
        return self.root / "NMNIST"

    def prepare_data(self) -> None:
        if self.synthetic_config is not None:
            generate_synthetic_nmnist(self.data_dir, self.synthetic_config)
        elif self.hparams.download:
            import tonic  # deferred: only the real-data path needs it

            for train in (True, False):
                tonic.datasets.NMNIST(save_to=str(self.root), train=train)

    def split(self, train: bool) -> NMNISTFrameDataset:
        """The train (``True``) or test (``False``) dataset."""
        if train not in self._splits:
            try:
                samples = read_synthetic_nmnist_split(self.data_dir, train)
            except FileNotFoundError as error:
                raise FileNotFoundError(
                    f"{error}. For the real N-MNIST set data.download: true (tonic downloads it into "
                    f"{self.root}), or data.synthetic: true for the stand-in"
                ) from error
            h = self.hparams
            cache = None
            if h.cache:
                cache = FrameCache(
                    h.cache_dir or self.root / "cache",
                    f"nmnist-{'train' if train else 'test'}",
                    files=[p for p, _ in samples],
                    params={"crop": h.crop, "dt_us": h.dt_us, "n_time_steps": h.n_time_steps, "layout": "T,P,H,W"},
                    code_version=FRAMES_CODE_VERSION,
                )
            self._splits[train] = NMNISTFrameDataset(
                samples, crop=h.crop, dt_us=h.dt_us, n_time_steps=h.n_time_steps, cache=cache
            )
        return self._splits[train]

    def setup(self, stage: str) -> None:
        if self.synthetic_config is not None:
            generate_synthetic_nmnist(self.data_dir, self.synthetic_config)  # no-op when already written
        if stage == "fit":
            self.split(True)
        self.split(False)
        samples = self.split(stage == "fit").samples
        first = first_readable(
            lambda i: (read_nmnist_bin(samples[i][0], allow_empty=True), samples[i][0]), len(samples)
        )
        if first is not None:
            h = self.hparams
            check_window_fits(first[0], h.dt_us, h.n_time_steps, str(first[1]), from_zero=True)

    def _loader(self, train: bool, stage: str) -> DataLoader:
        split = self.split(train)
        files = [str(path) for path, _ in split.samples]
        ledger = self.bad_samples
        return window_loader(
            split, self.hparams, train=train, shuffle=train, bad_samples=ledger, stage=stage, files=files
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(True, "train")

    def val_dataloader(self) -> DataLoader:
        return self._loader(False, "val")

    def test_dataloader(self) -> DataLoader:
        return self._loader(False, "test")
