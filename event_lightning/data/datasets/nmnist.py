"""N-MNIST (Orchard et al. 2015): the 10 MNIST digits recorded by an ATIS on a 34x34 sensor.

Two DataModules read the same ``.bin`` files with the same reader (:func:`read_nmnist_bin`), for
two methods that want different inputs:

* :class:`NMNISTDataModule`, the Hybrid Guided VAE's input (``config/hgvae_nmnist.yaml``,
  ``config/hgvae_nmnist_synthetic.yaml``): a FIXED window -- the first ``n_time_steps`` bins of
  ``dt_us`` from ``t = 0`` -- cropped to the top-left 32x32, as dict batches
  ``{"frames": [T, B, 2, 32, 32] uint8 counts, "target", "label"}`` (the HG-VAE loader of
  :mod:`event_lightning.data.loading.windows`). Real data by default (``root`` is tonic's
  ``save_to``); ``synthetic: true`` for the stand-in.
* :class:`NMNISTFramesDataModule`, classification (``config/quickstart.yaml``, the LIF
  classifier): the WHOLE recording on the full 34x34 sensor, sliced by tonic ToFrame options
  (``time_window``, ``event_count``, ...) into a variable number of frames, as padded batches
  ``(frames [T_max, B, 2, 34, 34] integer counts, lengths [B], labels [B])`` (the
  :class:`~event_lightning.data.loading.classification_datamodule.EventClassificationDataModule`
  base it shares with POKER-DVS). The offline stand-in by default.

The stand-in is :func:`event_lightning.data.standins.nmnist.generate_synthetic_nmnist`, written in
N-MNIST's own layout and read back by the real reader.

HG-VAE input, as the reference loader (torchneuromorphic's N-MNIST): events with ``x >= 32`` or
``y >= 32`` are DISCARDED (a crop, no shift, no rescale) from the 34x34 sensor, the first
``n_time_steps`` bins of ``dt_us`` from ``t = 0`` are kept (100 ms: about the first saccade), no
random window. The real data comes through tonic's ``NMNIST`` download
(``<root>/NMNIST/Train/<digit>/*.bin``). Unlike the reference, the class-balanced subset of its
HDF5 builder is not reproduced: all files are used.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset

from event_lightning.data.loading.bad_samples import BadSampleLedger, BadSamplePolicy, check_bad_sample_policy
from event_lightning.data.loading.classification_datamodule import EventClassificationDataModule
from event_lightning.data.loading.config_checks import check_window_fits, first_measurable
from event_lightning.data.loading.frame_cache import FrameCache
from event_lightning.data.loading.frames_dataset import EventBatch, EventFramesDataset, file_source
from event_lightning.data.loading.loaders import LoaderSettings
from event_lightning.data.loading.missing_data import DatasetSource, dataset_not_found, downloading
from event_lightning.data.loading.predict_samples import PredictSamples
from event_lightning.data.loading.sample_transforms import SampleTransform, StageTransforms
from event_lightning.data.loading.windows import crop_window, evaluation_order_files, frames_to_float, window_loader
from event_lightning.data.standins.nmnist import (
    TEST_FOLDER,
    TRAIN_FOLDER,
    SyntheticDigitsConfig,
    ensure_synthetic_nmnist,
    read_synthetic_nmnist_split,
    synthetic_nmnist_folder,
)
from event_lightning.events import augment
from event_lightning.events.core import SensorSize
from event_lightning.events.formats.nmnist import NMNIST_SENSOR_SIZE, decode_nmnist_batch, read_nmnist_bin
from event_lightning.events.represent.frames import to_frame

__all__ = ["NMNISTBatchReader", "NMNISTDataModule", "NMNISTFrameDataset", "NMNISTFramesDataModule", "nmnist_frames"]

FRAMES_CODE_VERSION = "nmnist-frames-1"
NUM_CLASSES = 10
_NMNIST_GET = (
    "tonic.datasets.NMNIST downloads train.zip and test.zip from Mendeley Data (data.mendeley.com/datasets/"
    "468j46mzdv) and extracts them into <root>/NMNIST ({switch}; needs the network); offline, download them on "
    "another machine and unzip them there"
)
NMNIST_SOURCE = DatasetSource(
    "N-MNIST (HG-VAE input)",
    "<root>/NMNIST/Train/<digit 0-9>/*.bin and <root>/NMNIST/Test/<digit 0-9>/*.bin (ATIS .bin recordings)",
    _NMNIST_GET.format(switch="data.download: true"),
    "--data.init_args.synthetic true, or config/hgvae_nmnist_synthetic.yaml",
)
NMNIST_FRAMES_SOURCE = DatasetSource(
    "N-MNIST",
    NMNIST_SOURCE.layout,
    _NMNIST_GET.format(switch="what data.synthetic: false does"),
    "--data.init_args.synthetic true (the default), as in config/quickstart.yaml",
)


def nmnist_frames(
    path: str | os.PathLike,
    crop: int,
    dt_us: int,
    n_time_steps: int,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """``(n_time_steps, 2, crop, crop)`` int16 counts of one ``.bin`` file: events outside ``crop``
    dropped, bins of ``dt_us`` from ``t = 0``, zero-padded when the recording is shorter.

    ``transform`` (events -> events on the ``crop x crop`` sensor) runs on the window's events
    before framing."""
    events = read_nmnist_bin(path, allow_empty=True)
    events, sensor = augment.crop(events, NMNIST_SENSOR_SIZE, x0=0, y0=0, width=crop, height=crop)
    events = events[events["t"] < dt_us * n_time_steps]
    if transform is not None:
        events = transform(events)
    frames = to_frame(events, sensor, time_window=dt_us, start_time=0, include_incomplete=True)
    return crop_window(frames, 0, n_time_steps)


class NMNISTFrameDataset(Dataset):
    """``{"frames": (T, 2, crop, crop) counts, "target", "label"}`` per ``.bin`` file; ``transform``
    (a :class:`SampleTransform`, set per stage by :class:`StageTransforms`) runs on each window's events."""

    def __init__(
        self, samples: list[tuple[Path, int]], *, crop: int, dt_us: int, n_time_steps: int, cache: FrameCache | None
    ) -> None:
        self.samples, self.crop, self.dt_us, self.n_time_steps, self.cache = samples, crop, dt_us, n_time_steps, cache
        self.transform: SampleTransform | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path, label = self.samples[index]
        transform = None if self.transform is None else functools.partial(self.transform, index=index, origin=str(path))
        build = lambda: nmnist_frames(path, self.crop, self.dt_us, self.n_time_steps, transform)  # noqa: E731
        frames = build() if self.cache is None else np.array(self.cache.load(index, build))
        return {"frames": frames, "target": np.int64(label), "label": np.int64(label)}


class NMNISTDataModule(pl.LightningDataModule):
    """N-MNIST (or the synthetic digits) as HG-VAE inputs; validation = test split (as the reference),
    served in a fixed digit-mixed order.

    The Hybrid Guided VAE's data (``config/hgvae_nmnist.yaml``, ``config/hgvae_nmnist_synthetic.yaml``):
    one fixed window per recording -- ``n_time_steps`` bins of ``dt_us`` from ``t = 0``, cropped to
    ``crop x crop`` -- as time-first dict batches ``{"frames": [T, B, 2, crop, crop], "target",
    "label"}``; frames cross the bus as uint8 counts (int16 above 255) and become float32 on the
    device (``on_after_batch_transfer``). For whole recordings framed with tonic ToFrame slicing on
    the full 34x34 sensor (classification), use :class:`NMNISTFramesDataModule`.

    Args:
        root: tonic's ``save_to``: the files live in ``<root>/NMNIST/{Train,Test}/<digit>/*.bin``.
        synthetic: write (once) and read the synthetic digits instead of the real set, in
            ``<root>/synthetic-nmnist-<key>/NMNIST`` (one folder per ``synthetic_config``; see
            :mod:`event_lightning.data.standins.folders`).
        synthetic_config: fields of :class:`SyntheticDigitsConfig`.
        download: let tonic download the real set into ``root`` when missing.
        crop: keep events with ``x, y < crop`` (32 for the HG-VAE's 32x32 input).
        dt_us / n_time_steps: bin width and number of bins from ``t = 0``.
        cache: cache frames under ``cache_dir`` (default ``<root>/cache``); ~200 KB per sample.
        on_bad_sample: ``raise`` (default) or ``skip`` an unreadable ``.bin`` file: it is dropped from
            its batch and recorded in ``bad_samples`` (see :mod:`event_lightning.data.loading.bad_samples`).
        train_transform, eval_transform: event transforms (``class_path`` entries: this package's
            :mod:`event_lightning.events.augment`, tonic's ``tonic.transforms``, any callable on
            events) for training and for evaluation, run on each window's events after the
            reference's crop and before framing (a stage with transforms does not read the frame
            cache); see :mod:`event_lightning.data.loading.sample_transforms`.
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
        num_workers: int | Literal["auto"] = "auto",
        pin_memory: bool | Literal["auto"] = "auto",
        on_bad_sample: BadSamplePolicy = "raise",
        train_transform: list[Callable] | None = None,
        eval_transform: list[Callable] | None = None,
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
        self.save_hyperparameters(ignore=["train_transform", "eval_transform"])  # objects: kept in config.yaml
        self.loader_settings = LoaderSettings(batch_size, num_workers, pin_memory)
        self.synthetic_config = SyntheticDigitsConfig(**(synthetic_config or {})) if synthetic else None
        self.root = Path(root)
        # the stand-in has a folder per parameters: another run's stand-in is never touched
        self.data_root = synthetic_nmnist_folder(root, self.synthetic_config, "NMNIST") if synthetic else self.root
        self.sensor_size = SensorSize(crop, crop, 2)
        self.transforms = StageTransforms(train_transform, eval_transform, self.sensor_size)
        self.num_classes = NUM_CLASSES
        self.n_time_steps = n_time_steps
        self.class_names = [str(i) for i in range(NUM_CLASSES)]
        self._splits: dict[bool, NMNISTFrameDataset] = {}
        self.bad_samples = BadSampleLedger()

    @property
    def data_dir(self) -> Path:
        return self.data_root / "NMNIST"

    def prepare_data(self) -> None:
        if self.synthetic_config is not None:
            ensure_synthetic_nmnist(self.data_root, self.synthetic_config, "NMNIST")
        elif self.hparams.download:
            import tonic  # deferred: only the real-data path needs it

            with downloading(NMNIST_SOURCE, self.root):
                for train in (True, False):
                    tonic.datasets.NMNIST(save_to=str(self.root), train=train)

    def split(self, train: bool) -> NMNISTFrameDataset:
        """The train (``True``) or test (``False``) dataset."""
        if train not in self._splits:
            try:
                samples = read_synthetic_nmnist_split(self.data_dir, train)
            except FileNotFoundError as error:
                if self.synthetic_config is not None:
                    raise
                split = self.data_dir / (TRAIN_FOLDER if train else TEST_FOLDER)
                problem = f"no {'training' if train else 'test'} recordings"
                raise dataset_not_found(NMNIST_SOURCE, self.root, split, problem) from error
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
            ensure_synthetic_nmnist(self.data_root, self.synthetic_config, "NMNIST")  # no-op when already written
        if stage == "fit":
            self.split(True)
        self.split(False)
        samples = self.split(stage == "fit").samples
        first = first_measurable(
            lambda i: (read_nmnist_bin(samples[i][0], allow_empty=True), str(samples[i][0])), len(samples)
        )
        if first is not None:
            h = self.hparams
            check_window_fits(first[0], h.dt_us, h.n_time_steps, first[1], from_zero=True)

    def _loader(self, train: bool, stage: str) -> DataLoader:
        split = self.transforms.staged(self.split(train), stage)
        files = [str(path) for path, _ in split.samples]
        labels = [label for _, label in split.samples]
        options = {"on_bad_sample": self.hparams.on_bad_sample, "bad_samples": self.bad_samples, "stage": stage}
        options["epoch_counter"] = self.transforms.epoch
        return window_loader(
            split, self.loader_settings, self.trainer, train=train, shuffle=train, files=files, labels=labels, **options
        )

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        return frames_to_float(batch)

    def train_dataloader(self) -> DataLoader:
        return self._loader(True, "train")

    def val_dataloader(self) -> DataLoader:
        return self._loader(False, "val")

    def test_dataloader(self) -> DataLoader:
        return self._loader(False, "test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader(False, "predict")

    def predict_samples(self) -> PredictSamples:
        """Predict serves the test split in class-mixed order, one ``.bin`` recording per sample."""
        samples = self.split(False).samples
        return PredictSamples("test", evaluation_order_files([str(p) for p, _ in samples], [y for _, y in samples]))


class NMNISTBatchReader:
    """An :data:`~event_lightning.data.loading.frames_dataset.EventBatchSource` over ``(path, label)`` pairs of
    ``.bin`` files: reads a batch's files, decodes and validates them in one vectorised pass.

    Returns None (the dataset then reads sample by sample, whose errors name the file) when a
    file cannot be read, needs the full reader (see :func:`decode_nmnist_batch`) or holds events
    outside ``sensor_size``.
    """

    def __init__(self, files: Sequence[tuple[Path, int]], sensor_size: SensorSize) -> None:
        if sensor_size.polarities != 2:
            raise ValueError(f"NMNISTBatchReader: expected a two-polarity sensor, found {sensor_size}")
        # str paths and plain open(): building Path objects per file costs as much as reading it
        self.paths = [str(path) for path, _ in files]
        self.labels = [int(label) for _, label in files]
        self.sensor_size = sensor_size

    def __call__(self, indices: Sequence[int]) -> EventBatch | None:
        try:
            chunks = [_read_bytes(self.paths[index]) for index in indices]
        except OSError:
            return None
        decoded = decode_nmnist_batch(chunks)
        if decoded is None:
            return None
        x, y, t, p, counts = decoded
        width, height = self.sensor_size.width, self.sensor_size.height
        if int(x.max()) >= width or int(y.max()) >= height:
            return None
        pixel = p * height  # flat (p, y, x) index, in place on the fresh int64 array
        pixel += y
        pixel *= width
        pixel += x
        return EventBatch(t, pixel, counts, [self.labels[index] for index in indices])


def _read_bytes(path: str) -> bytes:
    with open(path, "rb", buffering=0) as handle:
        return handle.read()


class NMNISTFramesDataModule(EventClassificationDataModule):
    """N-MNIST (34x34, 10 digits) as ``(frames [T, B, 2, 34, 34], lengths, labels)`` batches.

    The classification data (``config/quickstart.yaml``, the LIF classifier): each WHOLE recording
    on the full 34x34 sensor, sliced with tonic ToFrame options into as many frames as it needs,
    zero-padded along time per batch (``lengths`` says how many steps are real). The offline
    stand-in is the default (``synthetic: true``). For the HG-VAE's fixed 32x32 window from
    ``t = 0`` as float dict batches, use :class:`NMNISTDataModule`.

    Frames are integer counts, uint8 when every count of the batch fits (else int16). Without
    ``cache`` a loader reads a batch's ``.bin`` files, decodes, validates and frames them in one
    vectorised pass (:class:`NMNISTBatchReader`); a batch holding a file that pass cannot take
    (unreadable, truncated, overflow markers, events outside the sensor) is read file by file, so
    errors and ``on_bad_sample`` work per file as before.

    Args:
        root: for ``synthetic``, the stand-ins go to ``root/synthetic-nmnist-<key>/{Train,Test}``,
            one folder per ``n_train, n_test, seed`` (``root`` itself is read when it already holds
            exactly that stand-in; see :mod:`event_lightning.data.standins.folders`); else tonic's
            ``save_to`` (files land in ``root/NMNIST/Train`` and ``root/NMNIST/Test``).
        synthetic: use the offline stand-in (real handwritten digits from scikit-learn, simulated).
        n_train, n_test, seed: size and seed of the stand-in.
        time_window ... include_incomplete: framing (tonic ToFrame semantics; µs).
        on_bad_sample: ``raise`` (default) or ``skip`` an unreadable ``.bin`` file (dropped from
            its batch; see :mod:`event_lightning.data.loading.bad_samples`).
        cache, cache_dir: frame each recording once into ``cache_dir`` (default ``<root>/cache``)
            and read the frames back in later epochs (keyed by the files and framing options).
        val_fraction: share of each digit of the training recordings held out for validation
            (default 0.1: 100 of the stand-in's 1000, 6000 of real N-MNIST's 60000); the test
            split is only read by ``test`` and ``predict``. 0 validates on the test split.
        train_transform, eval_transform: event transforms (``class_path`` entries: this package's
            :mod:`event_lightning.events.augment`, tonic's ``tonic.transforms``, any callable on
            events) run on every recording before framing, for training and for evaluation; see
            :mod:`event_lightning.data.loading.sample_transforms`.
    """

    def __init__(
        self,
        root: str = "datasets/synthetic_nmnist",
        synthetic: bool = True,
        n_train: int = 1000,
        n_test: int = 300,
        seed: int = 0,
        time_window: float | None = 1000,
        event_count: int | None = None,
        n_time_bins: int | None = None,
        n_event_bins: int | None = None,
        overlap: float = 0,
        include_incomplete: bool = False,
        batch_size: int = 32,
        num_workers: int | Literal["auto"] = "auto",
        pin_memory: bool | Literal["auto"] = "auto",
        on_bad_sample: BadSamplePolicy = "raise",
        cache: bool = False,
        cache_dir: str | None = None,
        val_fraction: float = 0.1,
        train_transform: list[Callable] | None = None,
        eval_transform: list[Callable] | None = None,
    ) -> None:
        super().__init__(
            NMNIST_SENSOR_SIZE,
            10,
            time_window=time_window,
            event_count=event_count,
            n_time_bins=n_time_bins,
            n_event_bins=n_event_bins,
            overlap=overlap,
            include_incomplete=include_incomplete,
            batch_size=batch_size,
            num_workers=num_workers,
            pin_memory=pin_memory,
            on_bad_sample=on_bad_sample,
            cache=cache,
            cache_dir=cache_dir,
            val_fraction=val_fraction,
            train_transform=train_transform,
            eval_transform=eval_transform,
        )
        self.synthetic_config = SyntheticDigitsConfig(n_train=n_train, n_test=n_test, seed=seed)
        self.root, self.synthetic = Path(root), synthetic
        # the stand-in has a folder per parameters: another run's stand-in is never touched
        self.data_root = synthetic_nmnist_folder(root, self.synthetic_config) if synthetic else self.root
        self._files: dict[bool, list[str]] = {}
        self._labels: dict[bool, list[int]] = {}

    def prepare_data(self) -> None:
        if self.synthetic:
            ensure_synthetic_nmnist(self.data_root, self.synthetic_config)
        else:
            import tonic

            with downloading(NMNIST_FRAMES_SOURCE, self.root):
                for train in (True, False):  # downloads and extracts when missing
                    tonic.datasets.NMNIST(save_to=str(self.root), train=train)

    def build_split(self, train: bool) -> Dataset:
        if self.synthetic:  # idempotent; lets the DataModule be used without a Trainer
            self.prepare_data()
        folder = self.data_root if self.synthetic else self.root / "NMNIST"
        try:
            files = read_synthetic_nmnist_split(folder, train)
        except FileNotFoundError as error:
            if self.synthetic:
                raise
            split = folder / (TRAIN_FOLDER if train else TEST_FOLDER)
            problem = f"no {'training' if train else 'test'} recordings"
            raise dataset_not_found(NMNIST_FRAMES_SOURCE, self.root, split, problem) from error
        self._files[train] = [str(path) for path, _ in files]
        self._labels[train] = [int(label) for _, label in files]
        # the dataset validates every sample against the sensor: the reader need not do it too
        reader = functools.partial(read_nmnist_bin, sensor_size=None)
        return EventFramesDataset(
            file_source(files, reader),
            len(files),
            self.sensor_size,
            self.frame_spec,
            batch_source=NMNISTBatchReader(files, self.sensor_size),
        )

    def sample_files(self, train: bool) -> Sequence[str] | None:
        return self._files.get(train)

    def sample_labels(self, train: bool) -> Sequence[int] | None:
        return self._labels.get(train)
