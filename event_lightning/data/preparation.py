"""``python -m event_lightning.data prepare``: make a dataset ready under a root folder.

``prepare`` writes (downloads, extractions, the stand-in, caches); ``inspect`` builds the same
DataModule through :func:`setup_datamodule` with ``prepare=False`` and writes nothing.

:func:`prepare` runs the DataModule's own ``prepare_data`` and ``setup("fit")`` (download,
extraction, stand-in, packing) and then reads every training sample once so per-sample decoding
and frame caches run. Missing real files become a :class:`DatasetMissingError` that says what to
put where (the :data:`~event_lightning.data.registry.DATASETS` entry's instructions).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

import pytorch_lightning as pl
from pytorch_lightning.utilities.exceptions import MisconfigurationException
from tqdm import tqdm

from event_lightning.data.loading.missing_data import DatasetNotFoundError
from event_lightning.data.registry import get_entry
from event_lightning.data.standins.folders import StandInMissingError, read_only_standins

__all__ = ["DatasetMissingError", "prepare", "setup_datamodule", "split_datasets"]


class DatasetMissingError(FileNotFoundError):
    """The real files are not there; the message carries the module's error and the instruction."""


def setup_datamodule(name: str, root: Path, synthetic: bool, prepare: bool = True) -> pl.LightningDataModule:
    """Build, ``prepare_data()`` (unless not ``prepare``) and ``setup("fit")`` the DataModule.

    Missing files raise DatasetMissingError; with ``prepare=False`` nothing is downloaded and no
    stand-in is written (a missing one is reported, with the stand-ins present under ``root``).
    """
    entry = get_entry(name)
    dm = entry.build(Path(root), synthetic)
    try:
        if prepare:
            dm.prepare_data()
            dm.setup("fit")
        else:
            with read_only_standins():
                dm.setup("fit")
    except StandInMissingError as error:
        raise DatasetMissingError(f"{name}: {error}") from error
    except DatasetNotFoundError as error:
        # the module's own message already says where to get the files and how to use the stand-in
        raise DatasetMissingError(str(error)) from error
    except FileNotFoundError as error:
        how = entry.manual or f"tonic downloads {name}; check the network and that {root} is writable."
        raise DatasetMissingError(f"{error}\n\n{name}: {how}".replace("<root>", str(root))) from error
    return dm


def split_datasets(dm: pl.LightningDataModule) -> dict[str, Any]:
    """The ``train``/``val``/``test`` datasets behind the module's loaders (those it has)."""
    splits = {}
    for split in ("train", "val", "test"):
        loader_fn = getattr(dm, f"{split}_dataloader", None)
        if loader_fn is None:
            continue
        try:
            splits[split] = loader_fn().dataset
        except (NotImplementedError, MisconfigurationException):  # Lightning's default for an undefined loader
            continue
    return splits


def prepare(name: str, root: str | Path, synthetic: bool = False, out: TextIO | None = None) -> dict[str, int]:
    """Make ``name`` ready under ``root`` and read every training sample once; return split sizes."""
    dm = setup_datamodule(name, Path(root), synthetic)
    splits = split_datasets(dm)
    train = splits["train"]
    for index in tqdm(range(len(train)), desc=f"{name} train", unit="sample", file=out):
        train[index]  # decodes the sample and fills the module's frame cache where it has one
    sizes = {split: len(dataset) for split, dataset in splits.items()}
    print(f"{name}: prepared under {root}; " + ", ".join(f"{k}: {v} samples" for k, v in sizes.items()), file=out)
    return sizes
