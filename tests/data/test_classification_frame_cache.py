"""``cache: true`` on the classification DataModules: same frames, and later epochs read no recording."""

from __future__ import annotations

import torch

from event_lightning.data.datasets import nmnist as nmnist_frames
from event_lightning.data.datasets.nmnist import NMNISTFramesDataModule


def _epoch(data: NMNISTFramesDataModule) -> list[tuple[torch.Tensor, int]]:
    split = data.split(True)
    return [split[i] for i in range(len(split))]


def test_cached_frames_equal_fresh_frames_and_skip_the_reader(tmp_path, monkeypatch):
    kwargs = {"root": str(tmp_path), "n_train": 12, "n_test": 4, "time_window": 2000}
    fresh = NMNISTFramesDataModule(**kwargs)
    fresh.prepare_data()
    expected = _epoch(fresh)
    cached = NMNISTFramesDataModule(**kwargs, cache=True)
    first = _epoch(cached)
    files = sorted((tmp_path / "cache").glob("nmnistframesdatamodule-train-*/*.npy"))
    assert len(files) == 12
    reads = []
    original = nmnist_frames.read_nmnist_bin

    def counting_reader(path, *args, **kwargs):
        reads.append(path)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(nmnist_frames, "read_nmnist_bin", counting_reader)
    again = NMNISTFramesDataModule(**kwargs, cache=True)  # a new run over the same files
    second = _epoch(again)
    assert reads == []  # every sample came from the cache
    for (a, la), (b, lb), (c, lc) in zip(expected, first, second, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c) and a.dtype == c.dtype == torch.int16
        assert la == lb == lc


def test_another_framing_gets_another_cache(tmp_path):
    kwargs = {"root": str(tmp_path), "n_train": 6, "n_test": 2, "cache": True}
    NMNISTFramesDataModule(**kwargs, time_window=2000).split(True)[0]
    NMNISTFramesDataModule(**kwargs, time_window=5000).split(True)[0]
    assert len(list((tmp_path / "cache").glob("nmnistframesdatamodule-train-*"))) == 2
