"""A LightningDataModule base for event-stream classification with framed, padded batches."""

from __future__ import annotations

from abc import ABC, abstractmethod

import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset

from event_lightning.data.collate import pad_time_collate
from event_lightning.events.core import SensorSize
from event_lightning.events.represent import FrameSlicing


class EventClassificationDataModule(pl.LightningDataModule, ABC):
    """Train/test splits of labelled event streams framed on access.

    Subclasses set ``sensor_size`` and ``num_classes`` in ``__init__`` (the CLI links them into the
    model) and implement :meth:`build_split`. The dataset has no separate validation split: as in
    the norse tutorial, validation runs on the test split (``val`` and ``test`` are the same data).

    Batches are ``(frames [T_max, B, P, H, W] float32, lengths [B], labels [B])``.
    """

    def __init__(
        self,
        sensor_size: SensorSize,
        num_classes: int,
        *,
        time_window: float | None,
        event_count: int | None,
        n_time_bins: int | None,
        n_event_bins: int | None,
        overlap: float,
        include_incomplete: bool,
        batch_size: int,
        num_workers: int,
        pin_memory: bool,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, found {batch_size}")
        if num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, found {num_workers}")
        self.sensor_size = sensor_size
        self.num_classes = num_classes
        try:
            self.frame_spec = FrameSlicing(
                time_window, event_count, n_time_bins, n_event_bins, overlap, include_incomplete
            )
        except ValueError as error:  # name the config group: these are data.* keys
            raise ValueError(f"data: {error}") from None
        self.batch_size, self.num_workers, self.pin_memory = batch_size, num_workers, pin_memory
        self._splits: dict[bool, Dataset] = {}

    @abstractmethod
    def build_split(self, train: bool) -> Dataset:
        """The train (``True``) or test (``False``) dataset of ``(frames, label)`` samples."""

    def split(self, train: bool) -> Dataset:
        if train not in self._splits:
            self._splits[train] = self.build_split(train)
        return self._splits[train]

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.split(True)
        self.split(False)

    def _loader(self, train: bool, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.split(train),
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            collate_fn=pad_time_collate,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(True, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(False, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(False, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(False, shuffle=False)
