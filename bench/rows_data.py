"""Row 4: data loading per DataModule (synthetic stand-ins): samples/s of the first and a later
epoch, and per-sample read + frame against tonic's reader and ToFrame on the same files."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from bench.measure import BenchConfig, paired_times
from bench.results import Results, Row, Skipped


def _epoch_seconds(datamodule) -> tuple[float, int]:
    """Wall time of one full pass over the train loader and the number of samples it yielded."""
    start = time.perf_counter()
    count = 0
    for frames, _lengths, _labels in datamodule.train_dataloader():
        count += frames.shape[1]
    return time.perf_counter() - start, count


def _epoch_rows(name: str, datamodule, setup_seconds: float, results: Results) -> None:
    first, count = _epoch_seconds(datamodule)
    second, _ = _epoch_seconds(datamodule)
    size = f"{count} samples, batch {datamodule.batch_size}"
    results.rows.append(
        Row(
            "data",
            f"{name} epoch 1",
            size,
            first / count,
            note=f"{count / first:.0f} samples/s (per-sample time shown); setup + stand-in files {setup_seconds:.1f} s",
        )
    )
    results.rows.append(
        Row(
            "data",
            f"{name} epoch 2",
            size,
            second / count,
            note=f"{count / second:.0f} samples/s; no frame cache",
        )
    )


def _nmnist_rows(cfg: BenchConfig, results: Results, root: Path) -> None:
    from event_lightning.data.datasets.nmnist import NMNISTFramesDataModule
    from event_lightning.data.standins.nmnist import read_synthetic_nmnist_split

    n_train = 200 if cfg.quick else 1000
    start = time.perf_counter()
    datamodule = NMNISTFramesDataModule(root=str(root / "nmnist"), synthetic=True, n_train=n_train, n_test=10)
    datamodule.setup("fit")
    _epoch_rows("NMNISTFramesDataModule", datamodule, time.perf_counter() - start, results)

    # Per-sample read + frame of the same files: our dataset item vs tonic's reader + ToFrame.
    try:
        import tonic.io
        import tonic.transforms as tt
    except ImportError as error:  # pragma: no cover - tonic is a benchmark-only peer
        results.skipped.append(Skipped("data", "NMNIST read+frame", f"tonic not importable: {error}"))
        return
    files = read_synthetic_nmnist_split(datamodule.data_root, True)[:100]  # the stand-in's own folder
    dataset = datamodule.split(True)
    sensor = datamodule.sensor_size.as_tonic()
    to_frame_peer = tt.ToFrame(sensor_size=sensor, time_window=1000)
    peer_dtype = np.dtype([("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])  # tonic NMNIST's dtype

    def peer_item(path: Path) -> np.ndarray:
        return to_frame_peer(tonic.io.read_mnist_file(str(path), dtype=peer_dtype))

    agree = all(np.array_equal(dataset[k][0].numpy(), peer_item(files[k][0])) for k in range(len(files)))
    ours_t, peer_t = paired_times(
        lambda: [dataset[k] for k in range(len(files))], lambda: [peer_item(path) for path, _ in files], cfg
    )
    results.rows.append(
        Row(
            "data",
            "NMNIST .bin read + to_frame(1 ms), per sample",
            f"{len(files)} files",
            ours_t / len(files),
            "tonic read_mnist_file + ToFrame",
            peer_t / len(files),
            "identical" if agree else "DIFFERENT",
        )
    )


def _pokerdvs_rows(cfg: BenchConfig, results: Results, root: Path) -> None:
    from event_lightning.data.datasets.pokerdvs import PokerDVSDataModule

    start = time.perf_counter()
    datamodule = PokerDVSDataModule(root=str(root / "pokerdvs"), synthetic=True)
    datamodule.setup("fit")
    _epoch_rows("PokerDVSDataModule", datamodule, time.perf_counter() - start, results)


def run_data_rows(cfg: BenchConfig, results: Results) -> None:
    """Row 4 for the quickstart NMNIST frames DataModule and POKER-DVS, both synthetic."""
    with tempfile.TemporaryDirectory(prefix="el_bench_") as tmp:
        root = Path(tmp)
        for name, fn in (("NMNISTFramesDataModule", _nmnist_rows), ("PokerDVSDataModule", _pokerdvs_rows)):
            try:
                fn(cfg, results, root)
            except ImportError as error:
                results.skipped.append(Skipped("data", name, f"not importable: {error}"))
