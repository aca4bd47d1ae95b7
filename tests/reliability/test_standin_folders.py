"""Generated stand-ins are never deleted under a running job, and ``inspect`` writes nothing.

Before: a second run on the same ``root`` with other stand-in sizes deleted and rewrote the
stand-in (the first job died on a missing file), and ``python -m event_lightning.data inspect
... --synthetic`` replaced an 83-file set with 1300 files.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from event_lightning.data.__main__ import main as data_main
from event_lightning.data.datasets.nmnist import NMNISTFramesDataModule
from event_lightning.data.standins.folders import (
    StandInMissingError,
    ensure_standin,
    read_only_standins,
    standin_folder,
)
from event_lightning.data.standins.nmnist import SyntheticDigitsConfig, generate_synthetic_nmnist


def _snapshot(root: Path) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def _split_files(data: NMNISTFramesDataModule) -> list[str]:
    data.setup("fit")
    return list(data.sample_files(True))


def test_a_second_run_with_other_sizes_leaves_the_first_runs_files_alone(tmp_path):
    first = NMNISTFramesDataModule(root=str(tmp_path), n_train=8, n_test=4)
    first.prepare_data()
    files = _split_files(first)
    before = _snapshot(tmp_path)
    second = NMNISTFramesDataModule(root=str(tmp_path), n_train=6, n_test=2)
    second.prepare_data()
    assert second.data_root != first.data_root
    assert len(_split_files(second)) == 6
    assert all(_snapshot(tmp_path)[path] == stamp for path, stamp in before.items())
    assert all(Path(f).is_file() for f in files) and len(files) == 8
    # a third run with the first run's sizes reads the first run's folder: nothing is written
    third = NMNISTFramesDataModule(root=str(tmp_path), n_train=8, n_test=4)
    third.prepare_data()
    assert third.data_root == first.data_root and _split_files(third) == files


def test_a_root_that_holds_exactly_the_stand_in_is_read_as_it_is(tmp_path):
    generate_synthetic_nmnist(tmp_path, SyntheticDigitsConfig(n_train=4, n_test=2))
    before = _snapshot(tmp_path)
    data = NMNISTFramesDataModule(root=str(tmp_path), n_train=4, n_test=2)
    data.prepare_data()
    assert data.data_root == tmp_path and _snapshot(tmp_path) == before


def test_inspect_writes_nothing_and_names_the_stand_ins_present(tmp_path, capsys):
    NMNISTFramesDataModule(root=str(tmp_path), n_train=8, n_test=4).prepare_data()
    before = _snapshot(tmp_path)
    # inspect asks for the default stand-in (1000 + 300 recordings), which is not there
    assert data_main(["inspect", "nmnist_frames", "--root", str(tmp_path), "--synthetic"]) == 2
    err = capsys.readouterr().err
    assert "this command only reads" in err and "'n_train': 8" in err and "prepare" in err
    assert _snapshot(tmp_path) == before


def test_concurrent_writers_write_once_and_readers_see_a_whole_folder(tmp_path):
    calls = []

    def slow_write(staging: Path) -> None:
        calls.append(staging)
        (staging / "a.bin").write_bytes(b"1" * 100)
        time.sleep(0.3)
        (staging / "done").touch()

    def complete(folder: Path) -> bool:
        return (folder / "done").is_file()

    folder = standin_folder(tmp_path, "demo", {"n": 1}, complete)
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(ensure_standin(folder, slow_write, complete, {"n": 1})))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and results == [folder] * 4
    assert sorted(p.name for p in folder.iterdir()) == ["a.bin", "done", "standin.json"]
    assert not list(tmp_path.glob(".*.partial"))


def test_an_interrupted_write_leaves_no_folder_and_is_written_again(tmp_path):
    def complete(folder: Path) -> bool:
        return (folder / "done").is_file()

    def failing(staging: Path) -> None:
        (staging / "half").touch()
        raise KeyboardInterrupt

    folder = standin_folder(tmp_path, "demo", {"n": 2}, complete)
    with pytest.raises(KeyboardInterrupt):
        ensure_standin(folder, failing, complete)
    assert not folder.exists() and not list(tmp_path.glob(".*.partial"))
    with read_only_standins(), pytest.raises(StandInMissingError, match="only reads"):
        ensure_standin(folder, failing, complete)
    ensure_standin(folder, lambda staging: (staging / "done").touch(), complete)
    assert complete(folder)
