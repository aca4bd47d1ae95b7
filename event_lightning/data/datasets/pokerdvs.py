"""POKER-DVS (4 card pips, 35x35) in tonic's ``POKERDVS`` layout.

Used by ``config/lif_pokerdvs.yaml`` (the LIF classifier) and ``config/lif_pokerdvs_synthetic_figures.yaml``
(its stand-in, :mod:`event_lightning.data.standins.pokerdvs`, with the figure callbacks).

tonic 1.7 cannot download POKER-DVS (its host is gone) and only reads it when the archive
``pips_{train,test}.tar.gz`` sits in ``<root>/POKERDVS/``; this module extracts the archive there
itself (tonic would look for it inside its own package) and says which file to put where when
it is missing. ``synthetic: true`` writes a stand-in in the same layout (archives included), read
the same way.

Like tonic, the DataModule loads every recording when a split is built -- in tonic's order, with
tonic's labels -- but with :func:`read_tonic_npy`, which checks each file's declared size before
allocating it (tonic's ``np.load`` allocates whatever a header declares). Bad files show up
there: with ``on_bad_sample: raise`` the error names the file; with ``skip`` the split is built
from the good ones, the bad ones recorded once.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from torch.utils.data import Dataset

from event_lightning.data.loading.bad_samples import BAD_SAMPLE_ERRORS, BadSamplePolicy, record_setup_skips
from event_lightning.data.loading.classification_datamodule import EventClassificationDataModule
from event_lightning.data.loading.frames_dataset import EventFramesDataset
from event_lightning.data.loading.missing_data import DatasetSource, dataset_not_found
from event_lightning.data.standins.pokerdvs import (
    SyntheticPokerConfig,
    ensure_synthetic_pokerdvs,
    synthetic_pokerdvs_folder,
)
from event_lightning.events.core import SensorSize
from event_lightning.events.formats.tonic_npy import read_tonic_npy

POKERDVS_SENSOR = SensorSize(35, 35, 2)
POKERDVS_CLASSES = ("cl", "he", "di", "sp")
ARCHIVES = {
    True: ("pips_train", "412bcfb96826e4fcb290558e8c150aae"),
    False: ("pips_test", "eef2bf7d0d3defae89a6fa98b07c17af"),
}
POKERDVS_SOURCE = DatasetSource(
    "POKER-DVS",
    "<root>/POKERDVS/pips_train.tar.gz and <root>/POKERDVS/pips_test.tar.gz (extracted there on first use)",
    "tonic 1.7 cannot download POKER-DVS (its host was shut down): copy pips_train.tar.gz (md5 "
    "412bcfb96826e4fcb290558e8c150aae) and pips_test.tar.gz (md5 eef2bf7d0d3defae89a6fa98b07c17af) from a mirror "
    "or a colleague into <root>/POKERDVS/",
    "--data.init_args.synthetic true, as in config/lif_pokerdvs_synthetic_figures.yaml",
)


def _extracted_files(folder: Path) -> int:
    return sum(1 for _ in folder.glob("**/*.npy")) if folder.is_dir() else 0


def prepare_pokerdvs(root: Path, train: bool) -> Path:
    """Make ``<root>/POKERDVS`` readable by tonic 1.7's ``POKERDVS``; return that folder.

    Raises :class:`DatasetNotFoundError` naming the archive, the folder it belongs in and where to
    get it when the archive is not there.
    """
    location = Path(root) / "POKERDVS"
    name, md5 = ARCHIVES[train]
    archive = location / f"{name}.tar.gz"
    if not archive.is_file():
        raise dataset_not_found(POKERDVS_SOURCE, root, archive, f"{archive.name} (md5 {md5}) is missing")
    if _extracted_files(location / name) < 20:  # tonic's own "is it extracted" test
        with tarfile.open(archive) as tar:
            tar.extractall(location, filter="data")
    return location


def pokerdvs_files(folder: Path) -> list[tuple[Path, int]]:
    """The ``.npy`` recordings of an extracted split folder in the order tonic's ``POKERDVS``
    loads them (``os.walk`` order, file names sorted per folder), with their class index (from
    the last two letters of the folder name, as tonic)."""
    found = []
    for path, _, names in os.walk(folder):
        for name in sorted(names):
            if name.endswith("npy"):
                if path[-2:] not in POKERDVS_CLASSES:
                    where, classes = Path(path) / name, POKERDVS_CLASSES
                    raise FileNotFoundError(f"POKER-DVS: {where}: folder name ends in none of {classes}")
                found.append((Path(path) / name, POKERDVS_CLASSES.index(path[-2:])))
    return found


class _CheckedRecordings:
    """``(events, label)`` of recordings already read and validated, tonic-dataset-like."""

    def __init__(self, recordings: Sequence[tuple[np.ndarray, int]]) -> None:
        self.recordings = list(recordings)

    def __len__(self) -> int:
        return len(self.recordings)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.recordings[index]


class TonicSampleDataset(EventFramesDataset):
    """A tonic dataset's ``(events, target)`` samples as frames (see EventFramesDataset)."""

    def __init__(self, tonic_dataset, sensor_size: SensorSize, frame_spec, name: str) -> None:
        def source(index: int) -> tuple[np.ndarray, int, str]:
            events, target = tonic_dataset[index]
            return events, target, f"{name}[{index}]"

        super().__init__(source, len(tonic_dataset), sensor_size, frame_spec)


class PokerDVSDataModule(EventClassificationDataModule):
    """POKER-DVS: 4 classes (club, heart, diamond, spade), 48 train / 20 test recordings.

    Defaults are the norse tutorial's: 1 ms frames (``time_window=1000`` µs), batch 32.

    Args:
        root: folder holding ``POKERDVS/`` (tonic's ``save_to``).
        synthetic: write (once) and use the offline stand-in instead, in
            ``root/synthetic-pokerdvs-<key>`` (one folder per seed).
        synthetic_seed: seed of the stand-in.
        synthetic_config: other fields of the stand-in's
            :class:`~event_lightning.data.standins.pokerdvs.SyntheticPokerConfig` (e.g. fewer
            recordings per class for a quick check: ``{train_per_class: 2, test_per_class: 1}``).
        on_bad_sample: ``raise`` (default) or ``skip`` unreadable recordings (see the module
            docstring and :mod:`event_lightning.data.loading.bad_samples`).
        cache, cache_dir: frame each recording once into ``cache_dir`` (default ``<root>/cache``)
            and read the frames back in later epochs (keyed by the files and framing options).
        val_fraction: share of each class of the training recordings held out for validation;
            0 (the default, the norse tutorial's choice) validates on the 20 test recordings.
            Evaluation serves the recordings in a fixed class-mixed order either way.
        train_transform, eval_transform: event transforms (``class_path`` entries: this package's
            :mod:`event_lightning.events.augment`, tonic's ``tonic.transforms``, any callable on
            events) run on every recording before framing, for training and for evaluation; see
            :mod:`event_lightning.data.loading.sample_transforms`.
    """

    def __init__(
        self,
        root: str = "datasets",
        synthetic: bool = False,
        synthetic_seed: int = 0,
        synthetic_config: dict[str, Any] | None = None,
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
        val_fraction: float = 0.0,
        train_transform: list[Callable] | None = None,
        eval_transform: list[Callable] | None = None,
    ) -> None:
        super().__init__(
            POKERDVS_SENSOR,
            len(POKERDVS_CLASSES),
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
        self.root, self.synthetic = Path(root), synthetic
        self.synthetic_config = SyntheticPokerConfig(**{"seed": synthetic_seed, **(synthetic_config or {})})
        # the stand-in has a folder per parameters: another run's stand-in is never touched
        self.data_root = synthetic_pokerdvs_folder(root, self.synthetic_config) if synthetic else self.root
        self._files: dict[bool, list[str]] = {}
        self._labels: dict[bool, list[int]] = {}

    def prepare_data(self) -> None:
        if self.synthetic:
            ensure_synthetic_pokerdvs(self.data_root, self.synthetic_config)

    def build_split(self, train: bool) -> Dataset:
        if self.synthetic:  # idempotent; lets the DataModule be used without a Trainer
            self.prepare_data()
        location = prepare_pokerdvs(self.data_root, train)
        files = pokerdvs_files(location / ARCHIVES[train][0])
        name = f"POKERDVS {'train' if train else 'test'}"
        good, bad = [], []
        for path, label in files:
            try:
                good.append((read_tonic_npy(path, sensor_size=self.sensor_size), label, str(path)))
            except BAD_SAMPLE_ERRORS as error:
                if self.on_bad_sample == "raise":
                    raise
                bad.append((path, f"{type(error).__name__}: {error}"))
        if bad:
            record_setup_skips(self.bad_samples, name, bad)
        self._files[train] = [path for _, _, path in good]
        self._labels[train] = [int(label) for _, label, _ in good]
        recordings = _CheckedRecordings([(events, label) for events, label, _ in good])
        return TonicSampleDataset(recordings, self.sensor_size, self.frame_spec, name)

    def sample_files(self, train: bool) -> Sequence[str] | None:
        return self._files.get(train)

    def sample_labels(self, train: bool) -> Sequence[int] | None:
        return self._labels.get(train)
