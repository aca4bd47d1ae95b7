"""Framing datasets: validation errors name the file; batches are padded time-first."""

import numpy as np
import pytest
import torch

from event_lightning.data.loading.frames_collate import pad_time_collate, time_mask
from event_lightning.data.loading.frames_dataset import EventFramesDataset, file_source
from event_lightning.data.loading.sample_transforms import sample_transform
from event_lightning.events import EventFormatError, SensorSize, make_events
from event_lightning.events.formats.nmnist import write_nmnist_bin
from event_lightning.events.represent.frames import to_frame
from event_lightning.events.represent.slicing import FrameSlicing

SENSOR = SensorSize(34, 34, 2)


def _dataset(paths, reader):
    spec = FrameSlicing(time_window=1000)
    files = [(p, 1) for p in paths]
    return EventFramesDataset(file_source(files, reader), len(files), SENSOR, spec)


def test_out_of_range_coordinates_name_the_file(tmp_path):
    path = tmp_path / "bad.npy"
    np.save(path, make_events([40], [3], [10], [1]))
    with pytest.raises(EventFormatError, match=r"bad\.npy.*x outside \[0, 34\)"):
        _dataset([path], np.load)[0]


def test_empty_stream_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.npy"
    np.save(path, make_events([], [], [], []))
    with pytest.raises(EventFormatError, match=r"empty\.npy: the recording holds no events"):
        _dataset([path], np.load)[0]


def test_truncated_nmnist_file_is_a_clear_error(tmp_path):
    from event_lightning.events.formats.nmnist import read_nmnist_bin

    path = tmp_path / "00001.bin"
    write_nmnist_bin(path, make_events([1, 2, 3], [4, 5, 6], [10, 20, 30], [0, 1, 1]))
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(EventFormatError, match=r"00001\.bin"):
        _dataset([path], read_nmnist_bin)[0]


def test_frames_and_padding(tmp_path):
    lengths = []
    paths = []
    for i, n_ms in enumerate((3, 7)):
        path = tmp_path / f"{i}.npy"
        t = np.arange(n_ms) * 1000 + 500
        np.save(path, make_events(np.full(n_ms, 2), np.full(n_ms, 5), t, np.ones(n_ms, dtype=int)))
        paths.append(path)
        lengths.append(n_ms - 1)  # tonic: floor((t_last - t_first - W) / W) + 1 windows
    dataset = _dataset(paths, np.load)
    frames, lengths_out, labels = pad_time_collate([dataset[0], dataset[1]])
    assert lengths_out.tolist() == lengths and labels.tolist() == [1, 1]
    assert frames.shape == (max(lengths), 2, 2, 34, 34) and frames.dtype == torch.uint8  # counts fit 8 bits
    assert frames[:, :, 1, 5, 2].sum(0).tolist() == lengths  # one event per full 1 ms window at (x=2, y=5)
    assert frames.sum().item() == sum(lengths)  # the padding of the shorter sample is zero
    assert time_mask(lengths_out, frames.shape[0]).sum(0).tolist() == lengths


def test_padding_is_zeroed_even_in_reused_memory():
    """The padded batch is allocated uninitialised: the steps past a sample's length are written."""
    for _ in range(3):  # allocations come back from the allocator with old contents
        junk = torch.full((50, 2, 2, 4, 4), 7, dtype=torch.int16)
        del junk
        short, long = torch.ones(2, 2, 4, 4, dtype=torch.int16), torch.full((5, 2, 4, 4), 3, dtype=torch.int16)
        frames, lengths, _ = pad_time_collate([(short, 0), (long, 1)])
        assert frames[2:, 0].abs().sum().item() == 0 and frames[:2, 0].eq(1).all()
        assert frames[:, 1].eq(3).all() and lengths.tolist() == [2, 5]


def test_a_batch_of_mixed_dtypes_is_refused():
    with pytest.raises(ValueError, match="share a dtype"):
        pad_time_collate([(torch.zeros(2, 1, dtype=torch.int16), 0), (torch.zeros(2, 1), 1)])


def test_a_transform_output_outside_the_sensor_is_still_refused(tmp_path):
    """Samples are validated once on reading; what a transform returns is validated again."""
    path = tmp_path / "ok.npy"
    np.save(path, make_events([1, 2], [3, 4], [10, 2000], [0, 1]))

    def shift_out(events):
        shifted = events.copy()
        shifted["x"] += 40
        return shifted

    spec = FrameSlicing(time_window=1000)
    transform = sample_transform([shift_out], SENSOR, "data.train_transform")
    dataset = EventFramesDataset(file_source([(path, 0)], np.load), 1, SENSOR, spec, transform=transform)
    with pytest.raises(EventFormatError, match=r"ok\.npy after data\.train_transform: .*x outside \[0, 34\)"):
        dataset[0]


def test_samples_equal_to_frame_on_the_file_contents(tmp_path):
    rng = np.random.default_rng(5)
    n = 3000
    events = make_events(
        rng.integers(0, 34, n), rng.integers(0, 34, n), np.sort(rng.integers(0, 50_000, n)), rng.integers(0, 2, n)
    )
    path = tmp_path / "s.npy"
    np.save(path, events)
    frames, label = _dataset([path], np.load)[0]
    expected = to_frame(events, SENSOR, time_window=1000)
    assert label == 1 and frames.dtype == torch.int16 and np.array_equal(frames.numpy(), expected)
