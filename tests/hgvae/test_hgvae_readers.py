"""Readers and DataModules of the HG-VAE: tonic's DVSGesture and NMNIST layouts, the frame cache."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tonic
import torch

from event_lightning.data.datasets.dvsgesture import DVSGestureDataModule, lighting_index, recording_frames
from event_lightning.data.datasets.nmnist import NMNISTDataModule, nmnist_frames
from event_lightning.data.loading.frame_cache import FrameCache, cache_key, compact_integer_dtype
from event_lightning.data.loading.windows import crop_window, window_start
from event_lightning.events.core import EventFormatError, make_events
from event_lightning.events.formats.dvsgesture_npy import (
    dvsgesture_split_dir,
    list_dvsgesture_split,
    read_dvsgesture_npy,
    write_dvsgesture_npy,
)
from event_lightning.events.formats.nmnist import write_nmnist_bin

TINY = {
    "n_classes": 3,
    "train_users": [1],
    "test_users": [24],
    "lightings": ["led", "natural"],
    "duration_us": 120_000,
    "frame_interval_us": 10_000,
}


def _events(n: int, seed: int, width: int = 128, t_step: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return make_events(
        rng.integers(0, width, n),
        rng.integers(0, width, n),
        np.sort(rng.integers(0, 50, n)) * t_step,
        rng.integers(0, 2, n),
    )


def test_dvsgesture_round_trip_and_tonic_reads_our_files(tmp_path, monkeypatch) -> None:
    events = _events(500, 0)
    for user, light, label in ((1, "led", 3), (1, "fluorescent_led", 10), (2, "natural", 0)):
        write_dvsgesture_npy(dvsgesture_split_dir(tmp_path, True) / f"user{user:02d}_{light}" / f"{label}.npy", events)
    records = list_dvsgesture_split(tmp_path, True)
    assert [(r.user, r.lighting, r.label) for r in records] == [
        (1, "fluorescent_led", 10),
        (1, "led", 3),
        (2, "natural", 0),
    ]
    ours = read_dvsgesture_npy(records[1].path)
    assert np.array_equal(ours, events)
    # tonic's own class: it only needs its archive-present check, the layout is ours.
    monkeypatch.setattr(tonic.datasets.DVSGesture, "_check_exists", lambda self: True)
    dataset = tonic.datasets.DVSGesture(save_to=str(tmp_path), train=True)
    by_path = {os.path.abspath(p): i for i, p in enumerate(dataset.data)}
    for record in records:
        i = by_path[os.path.abspath(record.path)]
        theirs, label = dataset[i]
        assert label == record.label and dataset.users[i] == record.user and dataset.lighting[i] == record.lighting
        for field in ("x", "y", "t"):
            assert np.array_equal(theirs[field], events[field])
        assert np.array_equal(theirs["p"].astype(np.int8), events["p"])


def test_lighting_classes_follow_the_reference_order() -> None:
    # the reference's light_map: led 0, lab 1, natural 2, fluorescent 3 (fluorescent_led included)
    assert [lighting_index(token) for token in ("led", "lab", "natural", "fluorescent")] == [0, 1, 2, 3]
    assert lighting_index("fluorescent_led") == lighting_index("fluorescent") == 3


def test_dvsgesture_bad_files_give_clear_errors(tmp_path) -> None:
    good = tmp_path / "good.npy"
    write_dvsgesture_npy(good, _events(100, 1))
    truncated = tmp_path / "truncated.npy"
    truncated.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(EventFormatError, match="truncated.npy: the header declares .* the file is truncated"):
        read_dvsgesture_npy(truncated)
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"not a numpy file")
    with pytest.raises(EventFormatError, match="garbage.npy"):
        read_dvsgesture_npy(garbage)
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((5, 3), dtype=np.int64))
    with pytest.raises(EventFormatError, match=r"\[N, 4\].*found shape \(5, 3\)"):
        read_dvsgesture_npy(wrong)
    outside = tmp_path / "outside.npy"
    np.save(outside, np.array([[130, 1, 1, 0]], dtype=np.int64))
    with pytest.raises(EventFormatError, match="x outside"):
        read_dvsgesture_npy(outside)
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 4), dtype=np.int64))
    with pytest.raises(EventFormatError, match="no events"):
        read_dvsgesture_npy(empty)
    (tmp_path / "DVSGesture" / "ibmGestureTrain" / "badname").mkdir(parents=True)
    with pytest.raises(EventFormatError, match="user<NN>_<lighting>"):
        list_dvsgesture_split(tmp_path, True)
    with pytest.raises(FileNotFoundError, match="tonic.datasets.DVSGesture"):
        list_dvsgesture_split(tmp_path / "missing", False)


def test_frames_downsample_and_count_per_millisecond(tmp_path) -> None:
    # Whole milliseconds (the layout's precision); tonic ToFrame windows from the first event and, as
    # tonic does, leaves out an event exactly at the end of the last window.
    events = make_events(
        [0, 3, 4, 127, 5, 9], [0, 2, 4, 127, 9, 9], [1000, 1000, 2000, 2000, 3000, 10000], [1, 1, 0, 1, 0, 0]
    )
    write_dvsgesture_npy(tmp_path / "a.npy", events)
    frames = recording_frames(tmp_path / "a.npy", 4, 1000)
    assert frames.shape[1:] == (2, 32, 32)
    expected = np.zeros((3, 2, 32, 32), dtype=np.int16)
    expected[0, 1, 0, 0] = 2  # (0,0) and (3,2) share the 4x4 super-pixel (0, 0) in bin 0
    expected[1, 0, 1, 1] = 1
    expected[1, 1, 31, 31] = 1
    expected[2, 0, 2, 1] = 1
    assert frames.shape[0] == 9 and np.array_equal(frames[:3], expected) and frames[3:].sum() == 0


def test_frame_cache_key_memmap_and_windows(tmp_path) -> None:
    source = tmp_path / "s.bin"
    source.write_bytes(b"1234")
    params = {"dt_us": 1000}
    cache = FrameCache(tmp_path / "cache", "demo", files=[source], params=params, code_version="1")
    calls = []

    def build() -> np.ndarray:
        calls.append(1)
        return np.arange(24, dtype=np.int16).reshape(6, 4)

    first = cache.load(0, build)
    second = cache.load(0, build)
    assert len(calls) == 1 and isinstance(second, np.memmap) and second.dtype == np.uint8
    assert np.array_equal(first, np.arange(24).reshape(6, 4))
    assert cache_key(params, [source], "1") == cache.key
    assert cache_key({"dt_us": 2000}, [source], "1") != cache.key
    assert cache_key(params, [source], "2") != cache.key
    source.write_bytes(b"12345")
    assert cache_key(params, [source], "1") != cache.key
    assert compact_integer_dtype(np.array([-1, 300])) == np.int16
    with pytest.raises(ValueError, match="int16"):
        compact_integer_dtype(np.array([70000]))
    assert np.array_equal(crop_window(first, 4, 4)[2:], np.zeros((2, 4)))
    torch.manual_seed(0)
    starts = {window_start(10, 3, random=True, start_limit=2.0) for _ in range(200)}
    assert starts == {0, 1, 2, 3, 4}  # [0, 10 - 2 * 3]
    assert window_start(10, 3, random=False) == 0


def test_dvsgesture_datamodule_on_the_synthetic_stand_in(tmp_path) -> None:
    data = DVSGestureDataModule(
        root=str(tmp_path), synthetic=True, synthetic_config=TINY, n_time_steps=20, batch_size=4, dt_us=2000
    )
    assert data.num_classes == 3 and data.sensor_size.as_list() == [32, 32, 2] and data.n_time_steps == 20
    data.prepare_data()
    data.setup("fit")
    train = data.split(True)
    assert len(train) == 6  # 1 user x 2 lightings x 3 classes, "Other" (label 10) dropped
    assert len(list(dvsgesture_split_dir(data.data_root, True).glob("*/10.npy"))) == 2
    batch = next(iter(data.train_dataloader()))
    assert batch["frames"].shape == (20, 4, 2, 32, 32) and batch["frames"].dtype == torch.uint8
    assert set(batch) == {"frames", "target", "label", "light", "user"}
    assert torch.equal(batch["target"], batch["label"]) and set(batch["light"].tolist()) <= {0, 2}  # led, natural
    assert len(list((tmp_path / "cache").glob("dvsgesture-train-*/*.npy"))) >= 4
    lights = DVSGestureDataModule(
        root=str(tmp_path), synthetic=True, synthetic_config=TINY, target="light", n_time_steps=20, dt_us=2000
    )
    assert lights.num_classes == 4
    lights.setup("validate")
    sample = lights.split(False)[0]
    assert sample["target"] == sample["light"] == lighting_index(lights.split(False).records[0].lighting)


def test_nmnist_frames_crop_and_window_match_tonic(tmp_path, monkeypatch) -> None:
    rng = np.random.default_rng(3)
    n = 400
    t = np.sort(rng.integers(0, 150_000, n))
    events = make_events(rng.integers(0, 34, n), rng.integers(0, 34, n), t, rng.integers(0, 2, n))
    for split, digit in (("Train", 3), ("Test", 5)):
        write_nmnist_bin(tmp_path / "NMNIST" / split / str(digit) / "00001.bin", events)
    frames = nmnist_frames(tmp_path / "NMNIST" / "Train" / "3" / "00001.bin", 32, 1000, 100)
    monkeypatch.setattr(tonic.datasets.NMNIST, "_check_exists", lambda self: True)
    theirs, label = tonic.datasets.NMNIST(save_to=str(tmp_path), train=True)[0]
    keep = (theirs["x"] < 32) & (theirs["y"] < 32) & (theirs["t"] < 100_000)
    expected = np.zeros((100, 2, 32, 32), dtype=np.int64)
    np.add.at(expected, (theirs["t"][keep] // 1000, theirs["p"][keep], theirs["y"][keep], theirs["x"][keep]), 1)
    assert label == 3 and np.array_equal(frames, expected)
    data = NMNISTDataModule(root=str(tmp_path), n_time_steps=100, batch_size=1)
    data.setup("fit")
    assert data.split(False)[0]["label"] == 5
    with pytest.raises(FileNotFoundError, match="data.download: true"):
        NMNISTDataModule(root=str(tmp_path / "none")).setup("fit")
