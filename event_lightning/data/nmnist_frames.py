"""N-MNIST classification with framed, padded batches (the quickstart's data).

``synthetic: true`` (the default) writes the offline stand-in of
:mod:`event_lightning.data.synthetic_digits` into ``root`` once; otherwise tonic's ``NMNIST``
downloads and extracts the real set into ``root/NMNIST``. Either way the ``.bin`` files are read
by the same N-MNIST reader.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

from torch.utils.data import Dataset

from event_lightning.data.bad_samples import BadSamplePolicy
from event_lightning.data.classification import EventClassificationDataModule
from event_lightning.data.frames import EventBatch, EventFramesDataset, file_source
from event_lightning.data.synthetic_digits import (
    SyntheticDigitsConfig,
    generate_synthetic_nmnist,
    read_synthetic_nmnist_split,
)
from event_lightning.events.core import SensorSize
from event_lightning.events.formats.nmnist import NMNIST_SENSOR_SIZE, decode_nmnist_batch, read_nmnist_bin


class NMNISTBatchReader:
    """An :data:`~event_lightning.data.frames.EventBatchSource` over ``(path, label)`` pairs of
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

    Frames are integer counts, uint8 when every count of the batch fits (else int16). Without
    ``cache`` a loader reads a batch's ``.bin`` files, decodes, validates and frames them in one
    vectorised pass (:class:`NMNISTBatchReader`); a batch holding a file that pass cannot take
    (unreadable, truncated, overflow markers, events outside the sensor) is read file by file, so
    errors and ``on_bad_sample`` work per file as before.

    Args:
        root: for ``synthetic``, the folder that holds ``Train/`` and ``Test/``; else tonic's
            ``save_to`` (files land in ``root/NMNIST/Train`` and ``root/NMNIST/Test``).
        synthetic: use the offline stand-in (real handwritten digits from scikit-learn, simulated).
        n_train, n_test, seed: size and seed of the stand-in.
        time_window ... include_incomplete: framing (tonic ToFrame semantics; µs).
        on_bad_sample: ``raise`` (default) or ``skip`` an unreadable ``.bin`` file (dropped from
            its batch; see :mod:`event_lightning.data.bad_samples`).
        cache, cache_dir: frame each recording once into ``cache_dir`` (default ``<root>/cache``)
            and read the frames back in later epochs (keyed by the files and framing options).
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
        num_workers: int = 0,
        pin_memory: bool = False,
        on_bad_sample: BadSamplePolicy = "raise",
        cache: bool = False,
        cache_dir: str | None = None,
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
        )
        self.root, self.synthetic = Path(root), synthetic
        self._files: dict[bool, list[str]] = {}
        self._labels: dict[bool, list[int]] = {}
        self.synthetic_config = SyntheticDigitsConfig(n_train=n_train, n_test=n_test, seed=seed)

    def prepare_data(self) -> None:
        if self.synthetic:
            generate_synthetic_nmnist(self.root, self.synthetic_config)
        else:
            import tonic

            for train in (True, False):  # downloads and extracts when missing
                tonic.datasets.NMNIST(save_to=str(self.root), train=train)

    def build_split(self, train: bool) -> Dataset:
        if self.synthetic:  # idempotent; lets the DataModule be used without a Trainer
            self.prepare_data()
        folder = self.root if self.synthetic else self.root / "NMNIST"
        files = read_synthetic_nmnist_split(folder, train)
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
