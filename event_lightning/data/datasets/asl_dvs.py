"""ASL-DVS (Bi et al., ICCV 2019) for Event2Vec: 24 hand-shape letters on a 240x180 DAVIS240c.

Used by ``config/event2vec_asl_dvs.yaml`` (the real set) and ``config/event2vec_synthetic.yaml``
(the stand-in of :mod:`event_lightning.data.standins.asl_dvs`).

On disk, either
* spikingjelly's conversion, ``<root>/events_np/<letter>/<letter>_NNNN.npz`` (keys t, x, y, p),
  as the Event2Vec reference used it (``root`` may also be the ``events_np`` folder itself), or
* the original ``.mat`` release as tonic extracts it, ``<root>/ASLDVS/.../<letter>/*.mat``
  (``download=True`` fetches it through ``tonic.datasets.ASLDVS``).

Labels are the index of the letter in ``a b c d e f g h i k ... y`` (no j, no z: contiguous 0..23;
tonic's own targets leave a gap at j).  The split is per class in sorted file order: the first
``train_fraction`` (80%) of each letter's files train, the rest validate; validation (and test,
which is the same held-out split) is then repeated ``val_repeats`` times per epoch with fresh
random events each pass.  Repeating after splitting keeps every training file out of validation
(later versions of the reference repeat before splitting and leak training files into it).

By default (``packed=True``) all recordings are read once into a packed, memory-mapped cache
(:mod:`event_lightning.data.loading.packed_events`: one flat array per field plus offsets), keyed
by a hash of the file list, sizes, mtimes and reader settings; a worker then draws a whole batch
with one gather per field instead of opening one archive per sample.  ``packed=False`` reads one
file per sample, like the reference (both datasets are in
:mod:`event_lightning.data.loading.event_sequences`).

``on_bad_sample: skip`` leaves unreadable recordings out instead of failing: while packing (the
cache remembers them, and a later ``raise`` run on that cache still raises naming them), while
scanning the training files for ``t_max``, or per sample with ``packed=False`` (dropped from
their batch); see :mod:`event_lightning.data.loading.bad_samples`.  The split is made before bad files
are removed, so every good file stays in the split it has without bad files.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from event_lightning.data.loading.bad_samples import (
    BadSampleLedger,
    BadSamplePolicy,
    IndexedFiles,
    check_bad_sample_policy,
    guard_loader,
    record_setup_skips,
)
from event_lightning.data.loading.event_samplers import (
    NORM_T_MODES,
    EventBatch,
    make_sampler,
    normalize_time,
    pad_collate,
    seed_worker,
)
from event_lightning.data.loading.event_sequences import EventFileDataset, PackedEventDataset, passthrough_collate
from event_lightning.data.loading.loaders import LoaderSettings, build_loader
from event_lightning.data.loading.missing_data import DatasetSource, dataset_not_found, downloading
from event_lightning.data.loading.packed_events import (
    EventReader,
    PackedEvents,
    pack_event_files,
    packed_cache_key,
    scan_spans,
)
from event_lightning.data.loading.predict_samples import PredictSamples
from event_lightning.data.loading.sample_transforms import EpochCountingSampler, StageTransforms
from event_lightning.data.standins.asl_dvs import (
    SyntheticASLConfig,
    ensure_synthetic_asl_dvs,
    synthetic_asl_dvs_folder,
)
from event_lightning.events.core import EventFormatError, SensorSize
from event_lightning.events.formats.asl_dvs_mat import (
    ASL_DVS_CLASSES,
    ASL_DVS_FLIPS,
    ASL_DVS_SENSOR_SIZE,
    read_asl_dvs_mat,
)
from event_lightning.events.formats.spikingjelly_npz import read_spikingjelly_npz

__all__ = ["ASLDVSDataModule", "event_reader", "find_asl_dvs_files", "split_per_class"]

FILE_FORMATS = ("npz", "mat")
_ASL_STANDIN = "config/event2vec_synthetic.yaml (its data.synthetic settings write the stand-in under data.root)"
ASL_DVS_SOURCES = {
    "mat": DatasetSource(
        "ASL-DVS (.mat release)",
        "<root>/ASLDVS/<letter>/*.mat for the 24 letters a-y without j (the original release, as tonic extracts it)",
        "with data.download: true tonic.datasets.ASLDVS downloads ASLDVS.zip (the authors' Dropbox link) and "
        "extracts it into <root>/ASLDVS (needs the network); offline, download it on another machine and extract "
        "it there",
        _ASL_STANDIN,
    ),
    "npz": DatasetSource(
        "ASL-DVS (spikingjelly events_np)",
        "<root>/events_np/<letter>/*.npz (keys t, x, y, p) for the 24 letters a-y without j",
        "convert the .mat release with spikingjelly (ASLDVS(root, data_type='event') writes events_np/), or read "
        "the .mat files directly with data.file_format: mat (data.download: true fetches them with tonic)",
        _ASL_STANDIN,
    ),
}


def event_reader(
    file_format: str,
    sensor_size: SensorSize = ASL_DVS_SENSOR_SIZE,
    *,
    flip: str = "none",
    allow_empty: bool = False,
) -> EventReader:
    """A picklable ``path -> events`` reader for ``npz`` (spikingjelly) or ``mat`` (original) files,
    checking every event against ``sensor_size``."""
    if file_format == "npz":
        return functools.partial(read_spikingjelly_npz, sensor_size=sensor_size, allow_empty=allow_empty)
    if file_format == "mat":
        return functools.partial(read_asl_dvs_mat, flip=flip, sensor_size=sensor_size, allow_empty=allow_empty)
    raise ValueError(f"file_format must be one of {FILE_FORMATS}, found {file_format!r}")


def _class_folders(root: Path, file_format: str) -> dict[str, Path]:
    """Letter -> folder holding that letter's files."""
    if file_format == "npz":
        base = root / "events_np" if (root / "events_np").is_dir() else root
        return {folder.name: folder for folder in sorted(base.iterdir()) if folder.is_dir()} if base.is_dir() else {}
    base = root / "ASLDVS"
    # tonic takes the class from the last character of the folder that holds the .mat files.
    folders = {}
    if base.is_dir():
        for folder in sorted({path.parent for path in base.rglob("*.mat")}):
            folders.setdefault(folder.name[-1], folder)
    return folders


def find_asl_dvs_files(
    root: str | os.PathLike, file_format: str = "npz", classes: Sequence[str] = ASL_DVS_CLASSES
) -> tuple[list[Path], np.ndarray]:
    """Every recording of ``classes`` under ``root`` in sorted order, and its label ``[N]`` int64
    (the index of its letter in ``classes``).

    Raises:
        DatasetNotFoundError: a letter has no folder or no files, naming the layout expected and
            how to obtain the data.
    """
    if file_format not in FILE_FORMATS:
        raise ValueError(f"file_format must be one of {FILE_FORMATS}, found {file_format!r}")
    root = Path(root)
    folders = _class_folders(root, file_format)
    suffix = f".{file_format}"
    paths: list[Path] = []
    labels: list[np.ndarray] = []
    missing = []
    for label, letter in enumerate(classes):
        files = sorted(folders[letter].glob(f"*{suffix}")) if letter in folders else []
        if not files:
            missing.append(letter)
        paths += files
        labels.append(np.full(len(files), label, dtype=np.int64))
    if missing:
        problem = f"no {suffix} files for letter(s) {missing}"
        raise dataset_not_found(ASL_DVS_SOURCES[file_format], root, root, problem)
    return paths, np.concatenate(labels)


def split_per_class(labels: np.ndarray, train_fraction: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and validation recordings: per class, in the given (sorted) order,
    the first ``int(train_fraction * n_class)`` train and the rest validate."""
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be in (0, 1), found {train_fraction}")
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    first = np.searchsorted(sorted_labels, sorted_labels, side="left")
    counts = np.bincount(sorted_labels)[sorted_labels]
    rank = np.arange(len(labels)) - first
    is_train = rank < (train_fraction * counts).astype(np.int64)
    return np.sort(order[is_train]), np.sort(order[~is_train])


class ASLDVSDataModule(pl.LightningDataModule):
    """ASL-DVS as padded Event2Vec batches (:class:`EventBatch`) of ``[B, sample_number]``.

    Batches cross the bus as small integers (x, y int16, p int8, t int32 µs) and
    :meth:`on_after_batch_transfer` normalises the times on the device as ``norm_t`` says.

    Args:
        root: the dataset folder (with ``events_np/`` for npz, ``ASLDVS/`` for mat).
        file_format: ``npz`` (spikingjelly) or ``mat`` (original release).
        sample_number: events per sample (paper: 255, plus the CLS token = 256 tokens).
        sampler: ``random_sample`` (paper), ``uniform_sample``, ``deterministic_uniform_sample``,
            ``gaussian_sample``, ``multivariate_gaussian_sample``, ``random_chunk_sample_<c>``.
        norm_t: ``dataset-wise`` (paper; ``t / t_max``), ``sample-wise`` or ``none``.
        t_max: µs for ``dataset-wise``; None computes it from the training split (the reference
            hard-codes 521217 for ASL-DVS, the same quantity).
        batch_size, num_workers: DataLoader settings (paper: 128, 4); ``num_workers: auto`` follows
            the CPU count (see :mod:`event_lightning.data.loading.loaders`).
        train_fraction: per-class share of files that train (0.8).
        val_repeats: passes over the validation (and test) split per epoch (4).
        packed: sample from a packed memory-mapped cache (fast) or read one file per sample.
        cache_dir: where packed caches go (default ``<root>/packed``).
        mat_flip: orientation of ``.mat`` events: ``none`` (as stored, like the reference's
            npz files), ``y`` (tonic) or ``xy`` (spikingjelly 2.0).
        download: fetch the ``.mat`` release with tonic when it is missing.
        allow_empty: accept recordings without events (a sample of padding only).
        synthetic: write the synthetic stand-in (once, in ``root/synthetic-asl_dvs-<key>``, one
            folder per config and format) and train on it.
        pack_threads: threads that read files while packing or scanning.
        pin_memory, persistent_workers, prefetch_factor: DataLoader settings (``pin_memory: auto``
            pins when training on a GPU).
        seed: seed of the sampling generators in the main process (None: ``torch.initial_seed()``).
        on_bad_sample: ``raise`` (default) or ``skip`` unreadable recordings (module docstring).
        train_transform, eval_transform: event transforms (``class_path`` entries: this package's
            :mod:`event_lightning.events.augment`, tonic's ``tonic.transforms``, any callable on
            events) for training and for validation, test and predict. The reference's own
            augmentation, the event sampler, is kept: the user's transforms run on each sequence's
            ``sample_number`` sampled events after it (times in µs since the recording's first
            event), after the packed cache; see :mod:`event_lightning.data.loading.sample_transforms`.
    """

    def __init__(
        self,
        root: str = "datasets/asl_dvs",
        file_format: str = "npz",
        sample_number: int = 255,
        sampler: str = "random_sample",
        norm_t: str = "dataset-wise",
        t_max: float | None = None,
        batch_size: int = 128,
        num_workers: int | Literal["auto"] = "auto",
        train_fraction: float = 0.8,
        val_repeats: int = 4,
        packed: bool = True,
        cache_dir: str | None = None,
        mat_flip: str = "none",
        download: bool = False,
        allow_empty: bool = False,
        synthetic: SyntheticASLConfig | None = None,
        pack_threads: int = 8,
        pin_memory: bool | Literal["auto"] = "auto",
        persistent_workers: bool = True,
        prefetch_factor: int = 4,
        seed: int | None = None,
        on_bad_sample: BadSamplePolicy = "raise",
        train_transform: list[Callable] | None = None,
        eval_transform: list[Callable] | None = None,
    ) -> None:
        super().__init__()
        self.on_bad_sample = check_bad_sample_policy(on_bad_sample)
        self.bad_samples = BadSampleLedger()
        if file_format not in FILE_FORMATS:
            raise ValueError(f"file_format must be one of {FILE_FORMATS}, found {file_format!r}")
        if mat_flip not in ASL_DVS_FLIPS:
            raise ValueError(f"mat_flip must be one of {ASL_DVS_FLIPS}, found {mat_flip!r}")
        if norm_t not in NORM_T_MODES:
            raise ValueError(f"norm_t must be one of {NORM_T_MODES}, found {norm_t!r}")
        if val_repeats < 1:
            raise ValueError(f"val_repeats must be >= 1, found {val_repeats}")
        make_sampler(sampler)  # fail at construction on a bad name
        self.root = Path(root)
        # the stand-in has a folder per parameters: another run's stand-in is never touched
        self.data_root = synthetic_asl_dvs_folder(root, synthetic, file_format) if synthetic else self.root
        self.file_format = file_format
        self.sample_number = sample_number
        self.sampler = sampler
        self.norm_t = norm_t
        self.t_max = t_max
        self.t_max_used: float | None = None  # set by setup (computed from the training split when t_max is None)
        self.batch_size = batch_size
        self.loader_settings = LoaderSettings(batch_size, num_workers, pin_memory, persistent_workers, prefetch_factor)
        self.train_fraction = train_fraction
        self.val_repeats = val_repeats
        self.packed = packed
        self.cache_dir = Path(cache_dir) if cache_dir else self.root / "packed"
        self.mat_flip = mat_flip
        self.download = download
        self.allow_empty = allow_empty
        self.synthetic = synthetic
        self.pack_threads = pack_threads
        self.seed = seed
        self.classes = ASL_DVS_CLASSES[: synthetic.num_classes] if synthetic else ASL_DVS_CLASSES
        self.sensor_size = ASL_DVS_SENSOR_SIZE
        self.transforms = StageTransforms(train_transform, eval_transform, self.sensor_size)
        self.num_classes = len(self.classes)
        self.reader = event_reader(file_format, self.sensor_size, flip=mat_flip, allow_empty=allow_empty)
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    # -- files -----------------------------------------------------------------------------
    def _write_or_fetch(self) -> None:
        if self.synthetic is not None:
            ensure_synthetic_asl_dvs(self.data_root, self.synthetic, self.file_format)
            return
        if not self.download:
            return
        try:
            find_asl_dvs_files(self.root, self.file_format, self.classes)
            return
        except FileNotFoundError as error:
            if self.file_format != "mat":
                problem = "data.download cannot fetch the npz files (spikingjelly makes them from the .mat release)"
                raise dataset_not_found(ASL_DVS_SOURCES["npz"], self.root, self.root, problem) from error
        from tonic.datasets import ASLDVS  # downloads and extracts into <root>/ASLDVS

        with downloading(ASL_DVS_SOURCES["mat"], self.root):
            ASLDVS(save_to=str(self.root))

    def _pack(self, paths: list[Path]) -> PackedEvents:
        settings = {"format": self.file_format, "flip": self.mat_flip, "sensor": self.sensor_size.as_list()}
        settings["allow_empty"] = self.allow_empty
        return pack_event_files(
            paths,
            self.reader,
            self.cache_dir / packed_cache_key(paths, settings),
            self.sensor_size,
            threads=self.pack_threads,
            skip_bad=self.on_bad_sample == "skip",
        )

    def prepare_data(self) -> None:
        self._write_or_fetch()
        if self.packed:
            paths, _ = find_asl_dvs_files(self.data_root, self.file_format, self.classes)
            self._pack(paths)

    # -- datasets --------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self._write_or_fetch()
        paths, labels = find_asl_dvs_files(self.data_root, self.file_format, self.classes)
        train_ids, val_ids = split_per_class(labels, self.train_fraction)
        common = {"sampler": self.sampler, "sample_number": self.sample_number}
        bad: dict[int, str] = {}
        if self.packed:
            packed = self._pack(paths)
            bad.update({i: reason for i, _, reason in packed.skipped})
            train_ids = np.array([i for i in train_ids if i not in bad], dtype=np.int64)
            spans = packed.spans[train_ids]
        else:
            spans = None
        t_max = self.t_max
        if self.norm_t == "dataset-wise" and t_max is None and spans is None:
            scan_files = [paths[i] for i in train_ids]
            skip = self.on_bad_sample == "skip"
            spans, scan_bad = scan_spans(scan_files, self.reader, self.pack_threads, skip)
            bad.update({int(train_ids[k]): reason for k, reason in scan_bad.items()})
            keep = np.array([k not in scan_bad for k in range(len(train_ids))], dtype=bool)
            train_ids, spans = train_ids[keep], spans[keep]
        val_ids = np.array([i for i in val_ids if i not in bad], dtype=np.int64)
        if bad:
            record_setup_skips(self.bad_samples, "ASL-DVS", [(paths[i], bad[i]) for i in sorted(bad)])
        if not len(train_ids) or not len(val_ids):
            split = "training" if not len(train_ids) else "validation"
            raise EventFormatError(
                f"ASL-DVS: no readable recording left in the {split} split after leaving out "
                f"{len(bad)} bad file(s) under {self.data_root}"
            )
        self.train_files = [paths[i] for i in train_ids]
        self.val_files = [paths[i] for i in val_ids]
        if self.norm_t == "dataset-wise" and t_max is None:
            t_max = float(spans.max())
        self.t_max_used = t_max
        base_seed = torch.initial_seed() if self.seed is None else self.seed
        seeds = (base_seed, base_seed + 1)  # different streams for the two splits
        if self.packed:
            self.train_set = PackedEventDataset(
                packed, train_ids, labels[train_ids], seed=seeds[0], files=list(map(str, self.train_files)), **common
            )
            self.val_set = PackedEventDataset(
                packed,
                val_ids,
                labels[val_ids],
                repeats=self.val_repeats,
                seed=seeds[1],
                files=list(map(str, self.val_files)),
                **common,
            )
        else:
            self.train_set = EventFileDataset(self.train_files, labels[train_ids], self.reader, seed=seeds[0], **common)
            self.val_set = EventFileDataset(
                self.val_files,
                labels[val_ids],
                self.reader,
                repeats=self.val_repeats,
                seed=seeds[1],
                **common,
            )

    def _loader(self, dataset: Dataset, train: bool, stage: str) -> DataLoader:
        collate = passthrough_collate
        files = self.train_files if dataset is self.train_set else self.val_files
        dataset = self.transforms.staged(dataset, stage)
        if not self.packed:  # packed samples were read (and checked) while packing
            origin = IndexedFiles(files)
            policy, ledger = self.on_bad_sample, self.bad_samples
            pad = functools.partial(pad_collate, length=self.sample_number)
            dataset, collate = guard_loader(dataset, pad, policy, ledger, stage, origin)
        return build_loader(
            dataset,
            self.loader_settings,
            self.trainer,
            sampler=EpochCountingSampler(dataset, self.transforms.epoch) if train else None,
            drop_last=train,
            collate_fn=collate,
            worker_init_fn=seed_worker,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True, stage="train")

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False, stage="val")

    def test_dataloader(self) -> DataLoader:
        """ASL-DVS has no test split: the held-out (validation) split, repeated ``val_repeats`` times."""
        return self._loader(self.val_set, train=False, stage="test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False, stage="predict")

    def predict_samples(self) -> PredictSamples:
        """Predict serves the held-out (test) files, ``val_repeats`` passes over them."""
        return PredictSamples("test", [str(path) for path in self.val_files])

    def on_after_batch_transfer(self, batch: EventBatch, dataloader_idx: int) -> EventBatch:
        """Normalise the batch's times on the device (``norm_t``); coordinates and polarity stay the
        small integers they crossed the bus as (the network widens them)."""
        t = normalize_time(batch.t, batch.valid_mask, self.norm_t, self.t_max_used)
        return batch._replace(t=t)
