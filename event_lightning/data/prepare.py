"""Dataset preparation and inspection behind ``python -m event_lightning.data {prepare,inspect}``.

Each dataset is a :class:`DatasetEntry` in :data:`DATASETS`: how to build its DataModule for a
``--root`` (real data or the synthetic stand-in), whether tonic can download it and, when it
cannot, which files to put where. :func:`prepare` runs the module's own ``prepare_data`` and
``setup("fit")`` (download, extraction, stand-in, packing) and then reads every training sample
once so per-sample decoding and frame caches run. :func:`inspect_dataset` reports split sizes and,
where the raw events are reachable, events per sample and event rate (events/s); otherwise it
reports what it measured on the decoded sample tensors and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.exceptions import MisconfigurationException
from tqdm import tqdm

from event_lightning.events.core import SensorSize
from event_lightning.events.formats.nmnist import NMNIST_SENSOR_SIZE

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
    from event_lightning.data.pokerdvs import PokerDVSDataModule

    return PokerDVSDataModule(root=str(root), synthetic=synthetic)


def _pokerdvs_events(dm: pl.LightningDataModule, train: bool) -> Sequence[tuple[np.ndarray, int]]:
    import tonic

    # setup() already extracted the archives; tonic reads <root>/POKERDVS/pips_{train,test}.
    return tonic.datasets.POKERDVS(save_to=str(dm.root), train=train)


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
    from event_lightning.data.nmnist_frames import NMNISTFramesDataModule

    return NMNISTFramesDataModule(root=str(root), synthetic=synthetic)


def _nmnist_frames_events(dm: pl.LightningDataModule, train: bool) -> Sequence[tuple[np.ndarray, int]]:
    from event_lightning.data.synthetic_digits import read_synthetic_nmnist_split
    from event_lightning.events.formats.nmnist import read_nmnist_bin

    folder = dm.root if dm.synthetic else dm.root / "NMNIST"
    return _FileEvents(read_synthetic_nmnist_split(folder, train), read_nmnist_bin)


def _nmnist(root: Path, synthetic: bool) -> pl.LightningDataModule:
    from event_lightning.data.nmnist import NMNISTDataModule

    return NMNISTDataModule(root=str(root), synthetic=synthetic, download=not synthetic)


def _nmnist_events(dm: pl.LightningDataModule, train: bool) -> Sequence[tuple[np.ndarray, int]]:
    from event_lightning.data.synthetic_digits import read_synthetic_nmnist_split
    from event_lightning.events.formats.nmnist import read_nmnist_bin

    return _FileEvents(read_synthetic_nmnist_split(dm.data_dir, train), read_nmnist_bin)


def _dvsgesture(root: Path, synthetic: bool) -> pl.LightningDataModule:
    from event_lightning.data.dvsgesture import DVSGestureDataModule

    return DVSGestureDataModule(root=str(root), synthetic=synthetic, download=not synthetic)


def _asl_dvs(root: Path, synthetic: bool) -> pl.LightningDataModule:
    from event_lightning.data.asl_dvs import ASLDVSDataModule
    from event_lightning.data.synthetic_asl import SyntheticASLConfig

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
    from event_lightning.data.dhp19 import DHP19DataModule
    from event_lightning.data.synthetic_dhp19 import SyntheticDHP19DataModule

    return SyntheticDHP19DataModule(root=str(root)) if synthetic else DHP19DataModule(root=str(root))


def _mnist_sequences(root: Path, synthetic: bool) -> pl.LightningDataModule:
    from event_lightning.data.mnist_sequences import MNISTSequenceDataModule

    return MNISTSequenceDataModule(root=str(root), synthetic=synthetic)


def _dsprites_sequences(root: Path, synthetic: bool) -> pl.LightningDataModule:
    from event_lightning.data.dsprites_sequences import DSpritesSequenceDataModule

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


class DatasetMissingError(FileNotFoundError):
    """The real files are not there; the message carries the module's error and the instruction."""


def get_entry(name: str) -> DatasetEntry:
    if name not in DATASETS:
        raise UnknownDatasetError(name)
    return DATASETS[name]


def _setup(name: str, root: Path, synthetic: bool) -> pl.LightningDataModule:
    """Build, ``prepare_data()`` and ``setup("fit")`` the DataModule; missing files -> DatasetMissingError."""
    entry = get_entry(name)
    dm = entry.build(Path(root), synthetic)
    try:
        dm.prepare_data()
        dm.setup("fit")
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
    dm = _setup(name, Path(root), synthetic)
    splits = split_datasets(dm)
    train = splits["train"]
    for index in tqdm(range(len(train)), desc=f"{name} train", unit="sample", file=out):
        train[index]  # decodes the sample and fills the module's frame cache where it has one
    sizes = {split: len(dataset) for split, dataset in splits.items()}
    print(f"{name}: prepared under {root}; " + ", ".join(f"{k}: {v} samples" for k, v in sizes.items()), file=out)
    return sizes


@dataclass(frozen=True)
class EventStats:
    """Per-sample statistics over ``n_samples`` raw recordings."""

    n_samples: int
    events: np.ndarray  # [n_samples] events per sample
    rate: np.ndarray  # [n_samples] events / s over each recording's span (last t - first t, µs)


def event_statistics(samples: Sequence[tuple[np.ndarray, int]], max_samples: int) -> EventStats:
    """Events per sample and event rate (events/s) of the first ``max_samples`` recordings."""
    n = min(len(samples), max_samples)
    counts = np.zeros(n, dtype=np.int64)
    spans_us = np.zeros(n, dtype=np.float64)
    for i in range(n):  # one recording at a time; the per-event work is vectorised numpy
        events = samples[i][0]
        counts[i] = len(events)
        if len(events) > 1:
            t = np.asarray(events["t"], dtype=np.float64)
            spans_us[i] = t.max() - t.min()
    rate = np.divide(counts, spans_us * 1e-6, out=np.zeros(n), where=spans_us > 0)
    return EventStats(n, counts, rate)


def _summary(values: np.ndarray) -> str:
    return f"min {np.min(values):.4g}, median {np.median(values):.4g}, max {np.max(values):.4g}"


def _first_tensor(sample: Any) -> torch.Tensor | None:
    if isinstance(sample, torch.Tensor):
        return sample
    if isinstance(sample, np.ndarray) and sample.dtype.kind in "biuf":
        return torch.as_tensor(sample)
    if isinstance(sample, (tuple, list)):
        for item in sample:
            found = _first_tensor(item)
            if found is not None:
                return found
    if isinstance(sample, dict):
        return _first_tensor(list(sample.values()))
    return None


def _as_frames(tensor: torch.Tensor, max_panels: int) -> np.ndarray:
    """A decoded sample tensor as ``[T, P, H, W]`` (P in 1, 2) for :func:`plot_frames`."""
    array = tensor.detach().float().cpu().numpy()
    if array.ndim == 2:
        array = array[None, None]
    elif array.ndim == 3:
        array = array[None]
    elif array.ndim > 4:
        array = array.reshape(-1, *array.shape[-3:])
    if array.shape[1] not in (1, 2):
        array = np.abs(array).sum(axis=1, keepdims=True)
    return np.abs(array[:max_panels])


def inspect_dataset(
    name: str,
    root: str | Path,
    synthetic: bool = False,
    picture: str | Path | None = None,
    max_samples: int = 200,
    out: TextIO | None = None,
) -> dict[str, Any]:
    """Print split sizes and per-sample statistics; with ``picture`` save a PNG of train sample 0.

    Returns a dict with ``sizes`` and, for event datasets with a raw view, ``events`` and ``rate``
    (:class:`EventStats` arrays) or, otherwise, ``shape`` and ``nonzero`` of decoded samples.
    """
    entry = get_entry(name)
    dm = _setup(name, Path(root), synthetic)
    splits = split_datasets(dm)
    sizes = {split: len(dataset) for split, dataset in splits.items()}
    result: dict[str, Any] = {"sizes": sizes}
    print(f"{name} ({'synthetic stand-in' if synthetic else 'real data'}) under {root}", file=out)
    for split, size in sizes.items():
        print(f"  {split}: {size} samples", file=out)
    sensor: SensorSize | None = entry.raw_sensor or getattr(dm, "sensor_size", None)
    figure = None
    if entry.raw_events is not None:
        raw = entry.raw_events(dm, True)
        stats = event_statistics(raw, max_samples)
        result.update(events=stats.events, rate=stats.rate)
        print(f"  raw events of the first {stats.n_samples} train recordings:", file=out)
        print(f"    events per sample: {_summary(stats.events)}", file=out)
        print(f"    event rate (events/s over each recording's span): {_summary(stats.rate)}", file=out)
        if picture is not None:
            from event_lightning.viz import plot_event_grid

            events, label = raw[0]
            figure = plot_event_grid(events, sensor, n_panels=8, title=f"{name} train[0], label {label}")
    else:
        train = splits["train"]
        n = min(len(train), max_samples)
        tensors = [_first_tensor(train[i]) for i in range(n)]
        tensors = [t for t in tensors if t is not None]
        if not tensors:
            raise ValueError(f"{name}: train samples hold no array to measure (first sample: {type(train[0])})")
        nonzero = np.array([int(torch.count_nonzero(t)) for t in tensors], dtype=np.int64)
        shape = tuple(tensors[0].shape)
        result.update(shape=shape, nonzero=nonzero)
        print(
            f"  no raw-event view for {name}: measured the decoded input tensor of the first {len(tensors)} "
            f"train samples (not raw events)",
            file=out,
        )
        print(f"    sample tensor shape: {list(shape)}", file=out)
        print(f"    nonzero entries per sample: {_summary(nonzero)}", file=out)
        if picture is not None and tensors[0].ndim < 2:
            print(f"  no picture: the decoded sample is {tensors[0].ndim}-D, not an image", file=out)
        elif picture is not None:
            from event_lightning.viz import plot_frames

            figure = plot_frames(_as_frames(tensors[0], 8), suptitle=f"{name} train[0] (decoded input)")
    if figure is not None:
        Path(picture).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(picture)
        print(f"  picture of train sample 0 saved to {picture}", file=out)
    return result
