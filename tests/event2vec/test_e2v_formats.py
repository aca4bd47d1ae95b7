"""spikingjelly npz and ASL-DVS .mat readers: round trips, agreement with tonic, bad files."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
from tonic.datasets import ASLDVS as TonicASLDVS

from event_lightning.events.core import EVENT_DTYPE, EventFormatError, SensorSize, make_events
from event_lightning.events.formats.asl_dvs_mat import (
    ASL_DVS_SENSOR_SIZE,
    read_asl_dvs_mat,
    write_asl_dvs_mat,
)
from event_lightning.events.formats.spikingjelly_npz import read_spikingjelly_npz, write_spikingjelly_npz


def _events(n: int = 50, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return make_events(
        rng.integers(0, 240, n),
        rng.integers(0, 180, n),
        np.sort(rng.integers(0, 500_000, n)),
        rng.integers(0, 2, n),
    )


@pytest.mark.parametrize("compressed", [True, False])
def test_npz_round_trip(tmp_path, compressed):
    events = _events()
    path = write_spikingjelly_npz(tmp_path / "a" / "a_0000.npz", events, compressed=compressed)
    with np.load(path) as archive:
        assert sorted(archive.files) == ["p", "t", "x", "y"]
    back = read_spikingjelly_npz(path, sensor_size=ASL_DVS_SENSOR_SIZE)
    assert back.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(back, events)


def test_npz_reads_spikingjelly_dtypes_by_key(tmp_path):
    # spikingjelly keeps the raw dtypes: MATLAB doubles for t, bytes for x/y, bool polarity; any key order.
    path = tmp_path / "s.npz"
    np.savez(
        path,
        p=np.array([True, False, True]),
        y=np.array([3, 4, 5], np.uint8),
        x=np.array([7, 8, 9], np.uint8),
        t=np.array([10.0, 20.0, 30.0]),
    )
    events = read_spikingjelly_npz(path)
    np.testing.assert_array_equal(events["x"], [7, 8, 9])
    np.testing.assert_array_equal(events["y"], [3, 4, 5])
    np.testing.assert_array_equal(events["t"], [10, 20, 30])
    np.testing.assert_array_equal(events["p"], [1, 0, 1])


def test_npz_sorts_out_of_order_times(tmp_path):
    path = tmp_path / "s.npz"
    np.savez(path, t=np.array([30, 10, 20]), x=np.array([1, 2, 3]), y=np.array([0, 0, 0]), p=np.array([1, 0, 1]))
    events = read_spikingjelly_npz(path)
    np.testing.assert_array_equal(events["t"], [10, 20, 30])
    np.testing.assert_array_equal(events["x"], [2, 3, 1])


def test_npz_missing_key_names_file_and_keys(tmp_path):
    path = tmp_path / "broken.npz"
    np.savez(path, t=np.arange(3), x=np.arange(3), y=np.arange(3))
    with pytest.raises(EventFormatError, match=r"broken\.npz.*missing key\(s\) \['p'\].*found keys"):
        read_spikingjelly_npz(path)


def test_npz_length_mismatch_empty_and_garbage(tmp_path):
    path = tmp_path / "ragged.npz"
    np.savez(path, t=np.arange(3), x=np.arange(2), y=np.arange(3), p=np.arange(3) % 2)
    with pytest.raises(EventFormatError, match="one length"):
        read_spikingjelly_npz(path)
    empty = tmp_path / "empty.npz"
    np.savez(empty, t=np.zeros(0), x=np.zeros(0), y=np.zeros(0), p=np.zeros(0))
    with pytest.raises(EventFormatError, match=r"empty\.npz.*no events"):
        read_spikingjelly_npz(empty)
    assert len(read_spikingjelly_npz(empty, allow_empty=True)) == 0
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip archive")
    with pytest.raises(EventFormatError, match=r"garbage\.npz.*not a readable"):
        read_spikingjelly_npz(garbage)


def test_npz_coordinates_beyond_sensor(tmp_path):
    events = _events()
    events["x"][7] = 240
    path = write_spikingjelly_npz(tmp_path / "wide.npz", events)
    with pytest.raises(EventFormatError, match=r"wide\.npz.*x outside \[0, 240\).*index 7"):
        read_spikingjelly_npz(path, sensor_size=ASL_DVS_SENSOR_SIZE)
    assert len(read_spikingjelly_npz(path)) == len(events)  # no sensor given: no range check


def _real_layout_mat(path, events):
    """A .mat file as in the ASL-DVS release, written directly with scipy (column vectors)."""
    scipy.io.savemat(
        path,
        {
            "ts": events["t"].astype(np.float64)[:, None],
            "x": events["x"].astype(np.uint8)[:, None],
            "y": events["y"].astype(np.uint8)[:, None],
            "pol": events["p"].astype(np.uint8)[:, None],
        },
    )
    return path


def _tonic_read(path):
    """tonic 1.7's ASLDVS.__getitem__ on one file, without its 100,800-file download check."""
    dataset = TonicASLDVS.__new__(TonicASLDVS)
    dataset.data, dataset.targets = [str(path)], [0]
    dataset.transform = dataset.target_transform = dataset.transforms = None
    events, _ = dataset[0]
    return events.reshape(-1)


def test_mat_reader_matches_tonic(tmp_path):
    events = _events(80, seed=1)
    path = _real_layout_mat(tmp_path / "a_0001.mat", events)
    ours = read_asl_dvs_mat(path, flip="y")
    theirs = _tonic_read(path)
    for field in ("x", "y", "t", "p"):
        np.testing.assert_array_equal(ours[field], theirs[field], err_msg=field)
    raw = read_asl_dvs_mat(path)  # as stored: what the reference's npz files hold
    np.testing.assert_array_equal(raw, events)
    both = read_asl_dvs_mat(path, flip="xy")
    np.testing.assert_array_equal(both["x"], 239 - events["x"])
    np.testing.assert_array_equal(both["y"], 179 - events["y"])


@pytest.mark.parametrize("flip", ["none", "y", "xy"])
def test_mat_writer_round_trip(tmp_path, flip):
    events = _events(30, seed=2)
    path = write_asl_dvs_mat(tmp_path / "b" / "b_0000.mat", events, flip=flip)
    content = scipy.io.loadmat(path)
    assert content["ts"].shape == (30, 1) and content["pol"].shape == (30, 1)
    np.testing.assert_array_equal(read_asl_dvs_mat(path, flip=flip), events)


def test_mat_bad_files(tmp_path):
    path = tmp_path / "nopol.mat"
    scipy.io.savemat(path, {"ts": np.arange(3.0)[:, None], "x": np.ones((3, 1)), "y": np.ones((3, 1))})
    with pytest.raises(EventFormatError, match=r"nopol\.mat.*missing key\(s\) \['pol'\]"):
        read_asl_dvs_mat(path)
    events = _events(10)
    events["y"][3] = 200
    tall = _real_layout_mat(tmp_path / "tall.mat", events)
    with pytest.raises(EventFormatError, match=r"tall\.mat.*y outside \[0, 180\)"):
        read_asl_dvs_mat(tall)
    empty = tmp_path / "empty.mat"
    scipy.io.savemat(empty, {k: np.zeros((0, 1)) for k in ("ts", "x", "y", "pol")})
    with pytest.raises(EventFormatError, match="no events"):
        read_asl_dvs_mat(empty)
    with pytest.raises(ValueError, match="flip"):
        read_asl_dvs_mat(path, flip="x")
    small = SensorSize(10, 10, 2)
    with pytest.raises(EventFormatError):
        read_asl_dvs_mat(tall, sensor_size=small)
