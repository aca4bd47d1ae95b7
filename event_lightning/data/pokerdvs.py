"""POKER-DVS (4 card pips, 35x35) through tonic's ``POKERDVS`` class.

tonic 1.7 cannot download POKER-DVS (its host is gone) and only reads it when the archive
``pips_{train,test}.tar.gz`` sits in ``<root>/POKERDVS/``; this module extracts the archive there
itself (tonic would look for it inside its own package) and says which file to put where when
it is missing. ``synthetic: true`` writes a stand-in in the same layout (archives included), read
by the same tonic class.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from event_lightning.data.classification import EventClassificationDataModule
from event_lightning.data.frames import EventFramesDataset
from event_lightning.events.core import SensorSize

POKERDVS_SENSOR = SensorSize(35, 35, 2)
POKERDVS_CLASSES = ("cl", "he", "di", "sp")
ARCHIVES = {
    True: ("pips_train", "412bcfb96826e4fcb290558e8c150aae"),
    False: ("pips_test", "eef2bf7d0d3defae89a6fa98b07c17af"),
}


def _extracted_files(folder: Path) -> int:
    return sum(1 for _ in folder.glob("**/*.npy")) if folder.is_dir() else 0


def prepare_pokerdvs(root: Path, train: bool) -> Path:
    """Make ``<root>/POKERDVS`` readable by tonic 1.7's ``POKERDVS``; return that folder.

    Raises FileNotFoundError naming the archive and the folder it belongs in when neither the
    archive nor an extracted copy is there.
    """
    location = Path(root) / "POKERDVS"
    name, md5 = ARCHIVES[train]
    archive = location / f"{name}.tar.gz"
    if not archive.is_file():
        raise FileNotFoundError(
            f"POKER-DVS: {archive} not found. tonic 1.7 cannot download POKER-DVS (its host was shut down); "
            f"place {name}.tar.gz (md5 {md5}) in {location}/ — or set data.synthetic: true for the offline stand-in."
        )
    if _extracted_files(location / name) < 20:  # tonic's own "is it extracted" test
        with tarfile.open(archive) as tar:
            tar.extractall(location, filter="data")
    return location


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
        synthetic: write (once) and use the offline stand-in under ``root`` instead.
        synthetic_seed: seed of the stand-in.
    """

    def __init__(
        self,
        root: str = "datasets",
        synthetic: bool = False,
        synthetic_seed: int = 0,
        time_window: float | None = 1000,
        event_count: int | None = None,
        n_time_bins: int | None = None,
        n_event_bins: int | None = None,
        overlap: float = 0,
        include_incomplete: bool = False,
        batch_size: int = 32,
        num_workers: int = 0,
        pin_memory: bool = False,
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
        )
        self.root, self.synthetic, self.synthetic_seed = Path(root), synthetic, synthetic_seed

    def prepare_data(self) -> None:
        if self.synthetic:
            from event_lightning.data.synthetic_pokerdvs import generate_synthetic_pokerdvs

            generate_synthetic_pokerdvs(self.root, seed=self.synthetic_seed)

    def build_split(self, train: bool) -> Dataset:
        import tonic

        if self.synthetic:  # idempotent; lets the DataModule be used without a Trainer
            self.prepare_data()
        prepare_pokerdvs(self.root, train)
        dataset = tonic.datasets.POKERDVS(save_to=str(self.root), train=train)
        split = "train" if train else "test"
        return TonicSampleDataset(dataset, self.sensor_size, self.frame_spec, f"POKERDVS {split}")
