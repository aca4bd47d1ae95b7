"""dSprites transformation sequences for the Topographic VAE.

Used by the dSprites configs of the TVAE family: ``config/tvae_L0_dsprites.yaml``,
``config/tvae_Lhalf_dsprites.yaml``, ``config/tvae_Lshort_dsprites.yaml``,
``config/tvae_Lpartial_dsprites*.yaml``, ``config/nontvae_dsprites*.yaml`` and
``config/bubbles_dsprites.yaml``; the ``*_synthetic.yaml`` ones on the procedural stand-in
(:mod:`event_lightning.data.standins.dsprites`).

A sequence starts from one image of the reference's subset of the dSprites factor grid (see
:mod:`event_lightning.data.loading.dsprites_npz`) and steps one transformed factor (posX, posY,
orientation or scale, chosen uniformly) one subset index per frame, cyclically; its items are
(images uint8 [S, 1, 64, 64], factor indices int64 [S, 5] in the subset's index space).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from event_lightning.data.loading.dsprites_npz import (
    DSPRITES_ALT_FILE,
    DSPRITES_FILE,
    FACTOR_NAMES,
    IMAGE_SIZE,
    find_dsprites_file,
    load_dsprites_subset,
    subset_classes,
)
from event_lightning.data.loading.loaders import LoaderSettings, build_loader
from event_lightning.data.loading.missing_data import DatasetSource, dataset_not_found
from event_lightning.data.loading.predict_samples import PredictSamples
from event_lightning.data.standins.dsprites import ensure_synthetic_dsprites, synthetic_dsprites_folder

__all__ = ["DSpritesSequenceDataModule", "DSpritesSequenceDataset"]

log = logging.getLogger(__name__)

DSPRITES_SOURCE = DatasetSource(
    "dSprites",
    f"<root>/{DSPRITES_FILE} (or <root>/{DSPRITES_ALT_FILE}) with the arrays imgs and latents_classes",
    f"put DeepMind's {DSPRITES_FILE} (26 MB, github.com/deepmind/dsprites-dataset) in <root>; nothing downloads it",
    "--data.init_args.synthetic true, or config/tvae_Lpartial_dsprites_synthetic.yaml (and the other "
    "config/*_dsprites_synthetic.yaml)",
)


class DSpritesSequenceDataset(Dataset):
    """Sequences of ``seq_len`` frames over a factor-grid of images [F1..F5, 64, 64].

    Item index = the start image (C-order over the grid); the transformed factor is drawn
    uniformly from ``transform_factors`` (indices into shape, scale, orientation, posX, posY);
    frame t has that factor's index (v0 + t) mod size. ``seed=None``: new draws at every
    access; an int fixes them per index (and, with ``n_items``, picks that many start images).
    """

    def __init__(
        self,
        grid: np.ndarray,
        seq_len: int,
        transform_factors: list[int],
        seed: int | None = None,
        n_items: int | None = None,
    ) -> None:
        self.grid = torch.from_numpy(np.ascontiguousarray(grid))
        self.sizes = tuple(grid.shape[:5])
        self.seq_len = seq_len
        self.transform_factors = list(transform_factors)
        self.seed = seed
        total = int(np.prod(self.sizes))
        if n_items is None or n_items >= total:
            self.starts = np.arange(total)
        else:
            self.starts = np.sort(np.random.default_rng(seed).choice(total, size=n_items, replace=False))

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        if self.seed is None:
            choice = int(torch.randint(len(self.transform_factors), (1,)).item())
        else:
            choice = int(np.random.default_rng([self.seed, index]).integers(len(self.transform_factors)))
        factor = self.transform_factors[choice]
        start = np.array(np.unravel_index(int(self.starts[index]), self.sizes))
        factors = np.repeat(start[None], self.seq_len, axis=0)
        factors[:, factor] = (start[factor] + np.arange(self.seq_len)) % self.sizes[factor]
        factors = torch.from_numpy(factors)
        images = self.grid[tuple(factors.T)]  # [S, 64, 64]
        return images[:, None], factors


class DSpritesSequenceDataModule(pl.LightningDataModule):
    """dSprites (or the stand-in) as single-factor transformation sequences.

    Args:
        root: folder of the dSprites npz (or where the stand-in is written).
        synthetic: render the subset procedurally and write it as an npz first (offline).
        batch_size: sequences per batch (8 in the reference).
        seq_len: frames per sequence S (15).
        seq_transforms: the factors a sequence may transform.
        max_transform_len, factor_starts, factor_strides: the subset (see the module docstring).
        n_val_sequences: fixed validation sequences (start images and factors drawn with
            ``eval_seed``; the reference has no validation set, it reports training-epoch numbers).
    A batch reaching the model: (x [B, S, 1, 64, 64] float, factor indices [B, S, 5]).
    """

    def __init__(
        self,
        root: str = "datasets/dsprites",
        synthetic: bool = False,
        batch_size: int = 8,
        num_workers: int | Literal["auto"] = "auto",
        seq_len: int = 15,
        seq_transforms: list[str] | None = None,
        max_transform_len: int = 30,
        factor_starts: list[int] | None = None,
        factor_strides: list[int] | None = None,
        n_val_sequences: int = 1024,
        eval_seed: int = 0,
        pin_memory: bool | Literal["auto"] = "auto",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.root = Path(root)
        self.synthetic = synthetic
        self.batch_size = batch_size
        self.loader_settings = LoaderSettings(batch_size, num_workers, pin_memory)
        transforms = list(seq_transforms or ["posX", "posY", "orientation", "scale"])
        unknown = [t for t in transforms if t not in FACTOR_NAMES]
        if unknown or not transforms:
            raise ValueError(f"seq_transforms {transforms}: each must be one of {FACTOR_NAMES}")
        self.transform_factors = [FACTOR_NAMES.index(t) for t in transforms]
        self.kept = subset_classes(
            max_transform_len, factor_starts or [0, 1, 0, 0, 0], factor_strides or [1, 1, 2, 2, 2]
        )
        # one stand-in folder per factor subset: another run's file is never touched
        self.data_root = synthetic_dsprites_folder(self.root, self.kept) if synthetic else self.root
        self.n_val_sequences = n_val_sequences
        self.eval_seed = eval_seed
        self.n_time_steps = seq_len
        self.image_shape = (1, IMAGE_SIZE, IMAGE_SIZE)
        self.factor_names = list(FACTOR_NAMES)
        self.datasets: dict[str, DSpritesSequenceDataset] = {}

    def prepare_data(self) -> None:
        if self.synthetic:
            ensure_synthetic_dsprites(self.data_root, self.kept)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        if self.synthetic:
            self.prepare_data()
        try:
            path = find_dsprites_file(self.data_root)
        except FileNotFoundError as error:
            problem = f"neither {DSPRITES_FILE} nor {DSPRITES_ALT_FILE} is there"
            raise dataset_not_found(DSPRITES_SOURCE, self.data_root, self.data_root, problem) from error
        grid = load_dsprites_subset(path, self.kept)
        seq_len = self.n_time_steps
        self.datasets = {"train": DSpritesSequenceDataset(grid, seq_len, self.transform_factors)}
        if self.n_val_sequences > 0:
            self.datasets["val"] = DSpritesSequenceDataset(
                grid, seq_len, self.transform_factors, seed=self.eval_seed, n_items=self.n_val_sequences
            )
        log.info("dSprites sequences: %d start images, grid %s", grid[..., 0, 0].size, grid.shape[:5])

    def _loader(self, split: str, shuffle: bool, drop_last: bool) -> DataLoader:
        dataset = self.datasets[split]
        return build_loader(dataset, self.loader_settings, self.trainer, shuffle=shuffle, drop_last=drop_last)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("val", shuffle=False, drop_last=False) if "val" in self.datasets else []

    def predict_dataloader(self) -> DataLoader | list:
        return self.val_dataloader()

    def predict_samples(self) -> PredictSamples:
        """Predict serves the validation sequences (generated from ``eval_seed``)."""
        return PredictSamples("val")

    def on_after_batch_transfer(self, batch: tuple[Tensor, Tensor], dataloader_idx: int) -> tuple[Tensor, Tensor]:
        images, factors = batch
        return images.float(), factors
