"""The datasets ``python -m event_lightning.data {prepare,inspect}`` knows, and how it drives each.

Each dataset is a :class:`DatasetEntry` in :data:`DATASETS`: how to build its DataModule for a
``--root`` (real data or the synthetic stand-in), whether tonic can download it and, when it
cannot, which files to put where, and where its raw events are (for the statistics of
:mod:`event_lightning.data.inspection`). The DataModules are imported when an entry is built, so
the command starts without importing every dataset. A new dataset adds its entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl

from event_lightning.events.core import SensorSize
from event_lightning.events.formats.nmnist import NMNIST_SENSOR_SIZE

__all__ = ["DATASETS", "DatasetEntry", "RawEvents", "UnknownDatasetError", "get_entry"]

RawEvents = Callable[[pl.LightningDataModule, bool], Sequence[tuple[np.ndarray, int]]]


@dataclass(frozen=True)
class DatasetEntry:
    """How the CLI drives one dataset.

    Attributes:
        build: ``(root, synthetic) -> DataModule``.
        downloadable: tonic downloads the real set when it is missing.
        files: where the real files go, relative to ``--root`` (for the docs and messages).
        manual: what to do by hand when the real files are missing ("" when downloadable).
        raw_events: ``(datamodule, train) -> sequence of (events, label)`` after setup, events
            structured with x, y, t (µs), p; None when the module has no simple raw-event view.
        raw_sensor: the sensor of those raw events when it differs from the module's
            ``sensor_size`` (which may describe a crop or a downsampled sensor).
    """

    build: Callable[[Path, bool], pl.LightningDataModule]
    downloadable: bool
    files: str
    manual: str = ""
    raw_events: RawEvents | None = None
    raw_sensor: SensorSize | None = None


def _pokerdvs(root: Path, synthetic: bool) -> pl.LightningDataModule:
    from event_lightning.data.datasets.pokerdvs import PokerDVSDataModule

    return PokerDVSDataModule(root=str(root), synthetic=synthetic)


def _pokerdvs_events(dm: pl.LightningDataModule, train: bool) -> Sequence[tuple[np.ndarray, int]]:
    import tonic

    # setup() already extracted the archives; tonic reads <root>/POKERDVS/pips_{train,test}.
    return tonic.datasets.POKERDVS(save_to=str(dm.data_root), train=train)


class _FileEvents(Sequence):
    """``(events, label)`` read on access from ``(path, label)`` pairs."""

    def __init__(self, files: list[tuple[Path, int]], reader: Callable[[Path], np.ndarray]) -> None:
        self.files, self.reader = files, reader

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        path, label = self.files[index]
        return self.reader(path), label


def _nmnist_frames(root: Path, synthetic: bool) -> pl.LightningDataModule:
    from event_lightning.data.datasets.nmnist import NMNISTFramesDataModule

    return NMNISTFramesDataModule(root=str(root), synthetic=synthetic)


def _nmnist_frames_events(dm: pl.LightningDataModule, train: bool) -> Sequence[tuple[np.ndarray, int]]:
    from event_lightning.data.standins.nmnist import read_synthetic_nmnist_split
    from event_lightning.events.formats.nmnist import read_nmnist_bin

    folder = dm.data_root if dm.synthetic else dm.root / "NMNIST"
    return _FileEvents(read_synthetic_nmnist_split(folder, train), read_nmnist_bin)


def _nmnist(root: Path, synthetic: bool) -> pl.LightningDataModule:
    from event_lightning.data.datasets.nmnist import NMNISTDataModule

    return NMNISTDataModule(root=str(root), synthetic=synthetic, download=not synthetic)


def _nmnist_events(dm: pl.LightningDataModule, train: bool) -> Sequence[tuple[np.ndarray, int]]:
    from event_lightning.data.standins.nmnist import read_synthetic_nmnist_split
    from event_lightning.events.formats.nmnist import read_nmnist_bin

    return _FileEvents(read_synthetic_nmnist_split(dm.data_dir, train), read_nmnist_bin)


def _dvsgesture(root: Path, synthetic: bool) -> pl.LightningDataModule:
    from event_lightning.data.datasets.dvsgesture import DVSGestureDataModule

    return DVSGestureDataModule(root=str(root), synthetic=synthetic, download=not synthetic)


def _asl_dvs(root: Path, synthetic: bool) -> pl.LightningDataModule:
    from event_lightning.data.datasets.asl_dvs import ASLDVSDataModule
    from event_lightning.data.standins.asl_dvs import SyntheticASLConfig

    return ASLDVSDataModule(
        root=str(root),
        # The stand-in is written as spikingjelly npz; the real set comes as tonic's .mat release.
        file_format="npz" if synthetic else "mat",
        download=not synthetic,
        synthetic=SyntheticASLConfig() if synthetic else None,
        num_workers=0,
        pin_memory=False,
        persistent_workers=False,
    )


def _asl_dvs_events(dm: pl.LightningDataModule, train: bool) -> Sequence[tuple[np.ndarray, int]]:
    # setup() fixed the per-class file split; validation and test share the held-out files.
    files = dm.train_files if train else dm.val_files
    labels = (dm.train_set if train else dm.val_set).labels
    return _FileEvents(list(zip(files, labels[: len(files)].tolist(), strict=True)), dm.reader)


def _dhp19(root: Path, synthetic: bool) -> pl.LightningDataModule:
    from event_lightning.data.datasets.dhp19 import DHP19DataModule, SyntheticDHP19DataModule

    return SyntheticDHP19DataModule(root=str(root)) if synthetic else DHP19DataModule(root=str(root))


def _mnist_sequences(root: Path, synthetic: bool) -> pl.LightningDataModule:
    from event_lightning.data.datasets.mnist import MNISTSequenceDataModule

    return MNISTSequenceDataModule(root=str(root), synthetic=synthetic)


def _dsprites_sequences(root: Path, synthetic: bool) -> pl.LightningDataModule:
    from event_lightning.data.datasets.dsprites import DSpritesSequenceDataModule

    return DSpritesSequenceDataModule(root=str(root), synthetic=synthetic)


DATASETS: dict[str, DatasetEntry] = {
    "pokerdvs": DatasetEntry(
        _pokerdvs,
        downloadable=False,
        files="POKERDVS/pips_train.tar.gz, POKERDVS/pips_test.tar.gz",
        manual=(
            "tonic 1.7 cannot download POKER-DVS (its host was shut down). Obtain pips_train.tar.gz "
            "(md5 412bcfb96826e4fcb290558e8c150aae) and pips_test.tar.gz (md5 eef2bf7d0d3defae89a6fa98b07c17af) "
            "and put both in <root>/POKERDVS/; they are extracted there on first use. "
            "Or pass --synthetic for the offline stand-in."
        ),
        raw_events=_pokerdvs_events,
    ),
    "nmnist_frames": DatasetEntry(
        _nmnist_frames,
        downloadable=True,
        files="NMNIST/Train/<digit>/*.bin, NMNIST/Test/<digit>/*.bin",
        raw_events=_nmnist_frames_events,
    ),
    "nmnist": DatasetEntry(
        _nmnist,
        downloadable=True,
        files="NMNIST/Train/<digit>/*.bin, NMNIST/Test/<digit>/*.bin",
        raw_events=_nmnist_events,
        raw_sensor=NMNIST_SENSOR_SIZE,  # the module crops to 32x32 when framing
    ),
    "dvsgesture": DatasetEntry(
        _dvsgesture,
        downloadable=True,
        files="DVSGesture/ibmGestureTrain/, DVSGesture/ibmGestureTest/",
    ),
    "asl_dvs": DatasetEntry(
        _asl_dvs,
        downloadable=True,
        files="ASLDVS/<letter>/*.mat (the .mat release; the stand-in writes events_np/<letter>/*.npz)",
        raw_events=_asl_dvs_events,
    ),
    "dhp19": DatasetEntry(
        _dhp19,
        downloadable=False,
        files="<stem>_events.h5, <stem>_label.h5, P1..P4.npy, camera_positions.npy",
        manual=(
            "DHP19 is not downloadable through tonic. Convert the DHP19 recordings to the hybrid_ann_snn "
            "h5 layout (one <stem>_events.h5 and <stem>_label.h5 per recording) and put them, with the "
            "projection matrices P1..P4.npy and camera_positions.npy, in <root>/. "
            "Or pass --synthetic for the offline stand-in."
        ),
    ),
    "mnist_sequences": DatasetEntry(
        _mnist_sequences,
        downloadable=False,
        files="train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte",
        manual=(
            "MNIST is read from its four IDX files (.gz allowed), which this project does not download "
            "(torchvision is not used). Put them in <root>/ or <root>/MNIST/raw/. "
            "Or pass --synthetic for the offline stand-in."
        ),
    ),
    "dsprites_sequences": DatasetEntry(
        _dsprites_sequences,
        downloadable=False,
        files="dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz",
        manual=(
            "Download dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz from github.com/deepmind/dsprites-dataset "
            "and put it in <root>/. Or pass --synthetic for the procedural stand-in."
        ),
    ),
}


class UnknownDatasetError(KeyError):
    """A dataset name that is not in :data:`DATASETS`."""

    def __str__(self) -> str:
        return f"unknown dataset {self.args[0]!r}; known datasets: {', '.join(sorted(DATASETS))}"


def get_entry(name: str) -> DatasetEntry:
    if name not in DATASETS:
        raise UnknownDatasetError(name)
    return DATASETS[name]
