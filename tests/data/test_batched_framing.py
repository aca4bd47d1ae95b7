"""Batched fetching (``__getitems__``): the same batches as framing sample by sample, uint8 when counts fit."""

import numpy as np
import pytest
import torch

from event_lightning.data.datasets.nmnist import NMNISTBatchReader
from event_lightning.data.loading.bad_samples import BadSampleGuard, BadSampleLedger
from event_lightning.data.loading.frames_collate import pad_time_collate
from event_lightning.data.loading.frames_dataset import EventFramesDataset, SparseFrames, file_source
from event_lightning.events import EventFormatError, SensorSize, make_events
from event_lightning.events.formats.nmnist import (
    decode_nmnist_batch,
    decode_nmnist_bytes,
    encode_nmnist_bytes,
    read_nmnist_bin,
    write_nmnist_bin,
)
from event_lightning.events.represent.frames import frame_events
from event_lightning.events.represent.frames_batched import batch_frame_cells
from event_lightning.events.represent.pixels import pixel_index
from event_lightning.events.represent.slicing import FrameSlicing

SENSOR = SensorSize(34, 34, 2)


def _random_events(rng, n, duration_us, sensor=SENSOR, burst=False):
    t = np.sort(rng.integers(0, duration_us, n))
    if burst:  # many events in one window: counts above 255 and int16 wrap-around
        t[: n // 2] = t[n // 2]
        x = np.where(np.arange(n) < n // 2, 3, rng.integers(0, sensor.width, n))
        y = np.where(np.arange(n) < n // 2, 4, rng.integers(0, sensor.height, n))
    else:
        x, y = rng.integers(0, sensor.width, n), rng.integers(0, sensor.height, n)
    p = rng.integers(0, sensor.polarities, n)
    if burst:
        p[: n // 2] = 1
    return make_events(x, y, t + int(rng.integers(0, 5000)), p)


SLICINGS = [
    FrameSlicing(time_window=1000),  # the quickstart's: the vectorised path
    FrameSlicing(time_window=1000.0, include_incomplete=True),
    FrameSlicing(time_window=700, overlap=200),
    FrameSlicing(time_window=333.5),
    FrameSlicing(event_count=50, overlap=10, include_incomplete=True),
    FrameSlicing(n_time_bins=7, overlap=0.25),
    FrameSlicing(n_event_bins=5),
]


@pytest.mark.parametrize("slicing", SLICINGS, ids=lambda s: s.mode)
def test_batch_cells_count_to_frame_events_per_stream(slicing):
    rng = np.random.default_rng(3)
    streams = [_random_events(rng, n, d) for n, d in ((1, 10), (400, 9000), (2500, 30000), (37, 1500), (900, 4200))]
    t = np.concatenate([e["t"] for e in streams])
    pixel = np.concatenate([pixel_index(e, SENSOR) for e in streams])
    counts = np.array([len(e) for e in streams])
    cell, n_frames, max_frame_events = batch_frame_cells(t, pixel, counts, slicing, SENSOR.num_features)
    batch = np.zeros((int(n_frames.max()), len(streams), SENSOR.num_features), dtype=np.int16)
    np.add.at(batch.reshape(-1), cell, np.int16(1))
    for b, events in enumerate(streams):
        expected = frame_events(events, SENSOR, slicing)
        assert n_frames[b] == len(expected)
        np.testing.assert_array_equal(batch[: n_frames[b], b].reshape(expected.shape), expected)
        assert not batch[n_frames[b] :, b].any()
        assert expected.max() <= max_frame_events


def _write(tmp_path, streams):
    files = []
    for i, events in enumerate(streams):
        path = tmp_path / f"{i:05d}.bin"
        write_nmnist_bin(path, events)
        files.append((path, i % 10))
    return files


def _nmnist_dataset(files, slicing=None, batched=True):
    slicing = slicing or FrameSlicing(time_window=1000)
    source = file_source(files, lambda p: read_nmnist_bin(p, sensor_size=None))
    reader = NMNISTBatchReader(files, SENSOR) if batched else None
    return EventFramesDataset(source, len(files), SENSOR, slicing, batch_source=reader)


@pytest.mark.parametrize("burst", [False, True])
def test_nmnist_batches_equal_sample_by_sample_framing(tmp_path, burst):
    rng = np.random.default_rng(1)
    streams = [_random_events(rng, int(n), 60000, burst=burst) for n in rng.integers(300, 3000, 6)]
    if burst:
        streams[2] = _random_events(rng, 70000, 20000, burst=True)  # 35000 in one pixel: int16 wraps
    files = _write(tmp_path, streams)
    indices = [4, 0, 2, 5]
    for dataset in (_nmnist_dataset(files), _nmnist_dataset(files, batched=False)):
        fetched = dataset.__getitems__(indices)
        assert all(isinstance(frames, SparseFrames) for frames, _ in fetched)
        frames, lengths, labels = pad_time_collate(fetched)
        reference = [dataset[i] for i in indices]
        for b, (expected, label) in enumerate(reference):
            assert torch.equal(frames[: len(expected), b].to(torch.int16), expected)
            assert not frames[len(expected) :, b].any() and labels[b] == label and lengths[b] == len(expected)
            assert torch.equal(fetched[b][0].dense(), expected)
        assert frames.dtype == (torch.int16 if burst else torch.uint8)
        if burst:
            assert frames.min() < 0  # the wrapped count is kept, as tonic's int16 ToFrame gives it
        dense = pad_time_collate(reference)[0]
        assert dense.dtype == frames.dtype and torch.equal(dense, frames)  # same dtype rule as sample by sample


def test_counts_up_to_255_are_uint8_and_256_is_int16():
    def batch(n_same_pixel):
        events = make_events(
            np.full(n_same_pixel, 2),
            np.full(n_same_pixel, 3),
            np.arange(n_same_pixel) % 1,
            np.ones(n_same_pixel, dtype=int),
        )
        events = np.concatenate([events, make_events([0], [0], [2000], [0])])
        frames = torch.from_numpy(frame_events(events, SENSOR, FrameSlicing(time_window=1000)))
        return pad_time_collate([(frames, 0)])[0]

    def sparse_batch(n_same_pixel):
        events = make_events(
            np.full(n_same_pixel, 2), np.full(n_same_pixel, 3), np.zeros(n_same_pixel), np.ones(n_same_pixel)
        )
        events = np.concatenate([events, make_events([0], [0], [2000], [0])])
        dataset = EventFramesDataset(lambda i: (events, 0, "mem"), 1, SENSOR, FrameSlicing(time_window=1000))
        return pad_time_collate(dataset.__getitems__([0]))[0]

    for collate in (batch, sparse_batch):
        assert collate(255).dtype == torch.uint8 and collate(255)[0, 0, 1, 3, 2] == 255
        assert collate(256).dtype == torch.int16 and collate(256)[0, 0, 1, 3, 2] == 256


def test_float_frames_keep_their_dtype():
    frames, _, _ = pad_time_collate([(torch.ones(2, 1, 2, 2), 0)])
    assert frames.dtype == torch.float32


def test_decode_batch_equals_the_reader_and_defers_to_it():
    rng = np.random.default_rng(2)
    streams = [_random_events(rng, n, 9000) for n in (5, 800, 1)]
    chunks = [encode_nmnist_bytes(e) for e in streams]
    x, y, t, p, counts = decode_nmnist_batch(chunks)
    assert counts.tolist() == [5, 800, 1]
    expected = np.concatenate([decode_nmnist_bytes(c) for c in chunks])
    for name, values in (("x", x), ("y", y), ("t", t), ("p", p)):
        np.testing.assert_array_equal(values, expected[name])
    marker = bytes([0, 240, 0, 0, 0])
    unsorted = encode_nmnist_bytes(make_events([1, 1], [1, 1], [5, 9], [0, 0]))
    unsorted = unsorted[5:] + unsorted[:5]
    for bad in (b"", chunks[0][:-1], chunks[0] + marker, unsorted):
        assert decode_nmnist_batch([chunks[1], bad]) is None


def test_a_bad_file_in_a_batch_raises_the_per_sample_error(tmp_path):
    rng = np.random.default_rng(4)
    files = _write(tmp_path, [_random_events(rng, 500, 9000) for _ in range(3)])
    files[1][0].write_bytes(files[1][0].read_bytes()[:-2])  # truncated
    with pytest.raises(EventFormatError, match=r"00001\.bin.*5-byte events"):
        _nmnist_dataset(files).__getitems__([0, 1, 2])


def test_events_outside_the_sensor_are_refused_in_a_batch(tmp_path):
    rng = np.random.default_rng(5)
    streams = [_random_events(rng, 500, 9000) for _ in range(2)]
    files = _write(tmp_path, streams)
    streams[1]["x"][7] = 40  # the .bin format holds it; the 34x34 sensor does not
    write_nmnist_bin(files[1][0], streams[1], sensor_size=SensorSize(64, 64, 2))
    with pytest.raises(EventFormatError, match=r"00001\.bin.*x outside \[0, 34\)"):
        _nmnist_dataset(files).__getitems__([0, 1])


def test_skip_keeps_the_good_samples_of_a_batch(tmp_path):
    rng = np.random.default_rng(6)
    files = _write(tmp_path, [_random_events(rng, 500, 9000) for _ in range(3)])
    files[2][0].write_bytes(b"")
    dataset = _nmnist_dataset(files)
    ledger = BadSampleLedger(tmp_path / "ledger")
    fetched = BadSampleGuard(dataset, ledger, "train", lambda i: str(files[i][0])).__getitems__([0, 1, 2])
    assert [type(s).__name__ for s in fetched] == ["tuple", "tuple", "SkippedSample"]
    assert [r.file for r in ledger.records()] == [str(files[2][0])]
    good = pad_time_collate(fetched[:2])[0]
    assert torch.equal(good, pad_time_collate([dataset[0], dataset[1]])[0])


def test_samples_of_different_fetches_collate_together(tmp_path):
    rng = np.random.default_rng(7)
    files = _write(tmp_path, [_random_events(rng, int(n), 20000) for n in (300, 900, 50, 1200)])
    dataset = _nmnist_dataset(files)
    first, second = dataset.__getitems__([0, 1]), dataset.__getitems__([2, 3])
    mixed = [second[1], first[0], (dataset[2][0], 2)]  # sparse of two fetches and a dense sample
    frames, lengths, _ = pad_time_collate(mixed)
    for b, index in enumerate([3, 0, 2]):
        expected = dataset[index][0]
        assert torch.equal(frames[: len(expected), b].to(torch.int16), expected)
        assert not frames[len(expected) :, b].any() and lengths[b] == len(expected)


def test_nmnist_loader_with_workers_gives_the_main_process_batches(tmp_path):
    from event_lightning.data.datasets.nmnist import NMNISTFramesDataModule

    kwargs = {"root": str(tmp_path / "digits"), "n_train": 40, "n_test": 10, "batch_size": 16}
    main, workers = NMNISTFramesDataModule(**kwargs), NMNISTFramesDataModule(**kwargs, num_workers=2)
    for data in (main, workers):
        data.prepare_data()
        data.setup("fit")
    dataset = main.train_dataloader().dataset  # the training recordings less the held-out validation ones
    for (a, la, ya), (b, lb, yb) in zip(main.train_dataloader(), workers.train_dataloader(), strict=True):
        assert a.dtype == b.dtype == torch.uint8 and torch.equal(a, b)
        assert torch.equal(la, lb) and torch.equal(ya, yb)
    order = list(main.train_dataloader().sampler)[:16]
    frames, lengths, labels = next(iter(main.train_dataloader()))
    for k, index in enumerate(order):  # the first batch, sample by sample
        expected, label = dataset[index]
        assert torch.equal(frames[: lengths[k], k].to(torch.int16), expected) and labels[k] == label
