"""N-MNIST .bin and tonic POKER-DVS .npy readers/writers: round trips, tonic parity, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tonic
from tonic.io import read_mnist_file

from event_lightning.events.core import EVENT_DTYPE, EventFormatError, SensorSize, make_events
from event_lightning.events.formats import (
    NMNIST_MAX_TIMESTAMP_US,
    decode_nmnist_bytes,
    encode_nmnist_bytes,
    read_nmnist_bin,
    read_tonic_npy,
    write_nmnist_bin,
    write_tonic_npy,
)


def _random_events(rng: np.random.Generator, n: int, width: int, height: int, t_max: int) -> np.ndarray:
    t = np.sort(rng.integers(0, t_max, size=n))
    return make_events(rng.integers(0, width, n), rng.integers(0, height, n), t, rng.integers(0, 2, n))


def _as_columns(events: np.ndarray) -> np.ndarray:
    return np.stack([np.asarray(events[f]).astype(np.int64) for f in ("x", "y", "t", "p")], axis=1)


# ---------------------------------------------------------------- N-MNIST .bin


def test_nmnist_round_trip_is_exact(tmp_path: Path) -> None:
    events = _random_events(np.random.default_rng(0), 5000, 34, 34, 310_000)
    path = tmp_path / "Train" / "3" / "00001.bin"
    write_nmnist_bin(path, events)
    assert path.stat().st_size == 5 * len(events)
    back = read_nmnist_bin(path)
    assert back.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(back, events)


def test_nmnist_full_timestamp_range_round_trips(tmp_path: Path) -> None:
    t = np.array([0, 1, 255, 256, 65535, 65536, 2**22, NMNIST_MAX_TIMESTAMP_US])
    events = make_events(np.arange(8) * 4, np.arange(8) * 4 + 1, t, np.arange(8) % 2)
    write_nmnist_bin(tmp_path / "a.bin", events)
    np.testing.assert_array_equal(read_nmnist_bin(tmp_path / "a.bin"), events)


def test_nmnist_file_matches_tonic_reader(tmp_path: Path) -> None:
    events = _random_events(np.random.default_rng(1), 3000, 34, 34, 2**23)
    path = tmp_path / "00002.bin"
    write_nmnist_bin(path, events)
    theirs = read_mnist_file(str(path), dtype=tonic.datasets.NMNIST.dtype)
    np.testing.assert_array_equal(_as_columns(theirs), _as_columns(events))
    np.testing.assert_array_equal(_as_columns(read_nmnist_bin(path)), _as_columns(theirs))


def test_nmnist_bit_layout_of_one_event() -> None:
    # x=5, y=7, ON, t=0x123456: bytes x, y, p<<7 | t[22:16], t[15:8], t[7:0].
    data = encode_nmnist_bytes(make_events([5], [7], [0x123456], [1]))
    assert data == bytes([5, 7, 0x80 | 0x12, 0x34, 0x56])
    off = encode_nmnist_bytes(make_events([33], [0], [0x7FFFFF], [0]))
    assert off == bytes([33, 0, 0x7F, 0xFF, 0xFF])


def test_nmnist_overflow_markers_decode_like_tonic(tmp_path: Path) -> None:
    # Records with y=240 are timestamp-overflow markers in the ATIS format.
    records = [(1, 2, 1, 100), (3, 4, 0, 200), (0, 240, 0, 0), (5, 6, 1, 50), (0, 240, 0, 0), (7, 8, 0, 10)]
    raw = bytearray()
    for x, y, p, t in records:
        raw += bytes([x, y, (p << 7) | (t >> 16), (t >> 8) & 0xFF, t & 0xFF])
    path = tmp_path / "overflow.bin"
    path.write_bytes(bytes(raw))
    ours = read_nmnist_bin(path)
    theirs = read_mnist_file(str(path), dtype=tonic.datasets.NMNIST.dtype)
    np.testing.assert_array_equal(_as_columns(ours), _as_columns(theirs))
    assert ours["t"].tolist() == [100, 200, 50 + 2**13, 10 + 2 * 2**13]


def test_nmnist_out_of_order_records_are_sorted_stably() -> None:
    events = make_events([1, 2, 3], [1, 1, 1], [30, 10, 10], [1, 0, 1])
    raw = bytearray()
    for e in events:
        t = int(e["t"])
        raw += bytes([int(e["x"]), int(e["y"]), (int(e["p"]) << 7) | (t >> 16), (t >> 8) & 0xFF, t & 0xFF])
    decoded = decode_nmnist_bytes(bytes(raw))
    assert decoded["t"].tolist() == [10, 10, 30]
    assert decoded["x"].tolist() == [2, 3, 1]


def test_nmnist_truncated_file_names_file_size_and_remainder(tmp_path: Path) -> None:
    path = tmp_path / "truncated.bin"
    write_nmnist_bin(path, _random_events(np.random.default_rng(2), 4, 34, 34, 1000))
    path.write_bytes(path.read_bytes()[:-2])  # 18 bytes = 3 events + 3 bytes
    with pytest.raises(EventFormatError, match=r"truncated\.bin.*18 bytes.*3 whole events \+ 3 trailing"):
        read_nmnist_bin(path)


def test_nmnist_empty_file_is_an_error_unless_allowed(tmp_path: Path) -> None:
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    with pytest.raises(EventFormatError, match=r"empty\.bin.*empty \(0 bytes\)"):
        read_nmnist_bin(path)
    assert len(read_nmnist_bin(path, allow_empty=True)) == 0
    with pytest.raises(EventFormatError, match=r"out\.bin.*empty event stream"):
        write_nmnist_bin(tmp_path / "out.bin", np.zeros(0, dtype=EVENT_DTYPE))
    assert not (tmp_path / "out.bin").exists()


def test_nmnist_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(EventFormatError, match=r"nope\.bin"):
        read_nmnist_bin(tmp_path / "nope.bin")


def test_nmnist_out_of_range_coordinates_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "wide.bin"
    path.write_bytes(bytes([3, 3, 0, 0, 1, 40, 3, 0, 0, 2]))  # second event has x=40
    with pytest.raises(EventFormatError, match=r"wide\.bin.*x outside \[0, 34\).*x=40"):
        read_nmnist_bin(path)
    # No sensor check: a larger ATIS recording (e.g. N-Caltech101) reads fine.
    assert read_nmnist_bin(path, sensor_size=None)["x"].tolist() == [3, 40]
    with pytest.raises(EventFormatError, match=r"y outside \[0, 34\)"):
        write_nmnist_bin(tmp_path / "w.bin", make_events([1], [34], [5], [1]))


def test_nmnist_writer_rejects_what_the_format_cannot_hold(tmp_path: Path) -> None:
    with pytest.raises(EventFormatError, match=r"long\.bin.*23-bit timestamps.*t=8388608"):
        write_nmnist_bin(tmp_path / "long.bin", make_events([1, 2], [1, 2], [0, 2**23], [0, 1]))
    with pytest.raises(EventFormatError, match="overflow marker"):
        write_nmnist_bin(tmp_path / "m.bin", make_events([1], [240], [0], [0]), sensor_size=None)
    with pytest.raises(EventFormatError, match="sorted ascending"):
        write_nmnist_bin(tmp_path / "u.bin", make_events([1, 2], [1, 2], [9, 3], [0, 1]))
    with pytest.raises(EventFormatError, match="expected a structured array"):
        write_nmnist_bin(tmp_path / "d.bin", np.zeros((3, 4), dtype=np.int64))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- tonic POKER-DVS .npy


def test_tonic_npy_round_trip_and_layout(tmp_path: Path) -> None:
    events = _random_events(np.random.default_rng(3), 800, 35, 35, 500_000)
    path = tmp_path / "pip.npy"
    write_tonic_npy(path, events)
    raw = np.load(path)
    assert raw.shape == (800, 4) and raw.dtype == np.int64
    np.testing.assert_array_equal(raw, _as_columns(events)[:, [2, 0, 1, 3]])  # columns t, x, y, p
    np.testing.assert_array_equal(read_tonic_npy(path), events)


def test_tonic_npy_matches_tonic_pokerdvs_dataset(tmp_path: Path) -> None:
    # Lay out files the way tonic's POKERDVS finds them after extraction (>= 20 .npy, class = the
    # last two letters of the folder) and let tonic read them.
    location = tmp_path / "POKERDVS"
    location.mkdir()
    (location / "pips_train.tar.gz").write_bytes(b"placeholder: tonic only checks that it exists")
    rng = np.random.default_rng(4)
    by_length: dict[int, tuple[Path, int]] = {}  # every file gets its own length, to match them up
    for label, name in enumerate(tonic.datasets.POKERDVS.classes):
        for i in range(6):
            length = 50 + 7 * len(by_length)
            path = location / "pips_train" / f"pips_{name}" / f"{i:03d}.npy"
            write_tonic_npy(path, _random_events(rng, length, 35, 35, 300_000))
            by_length[length] = (path, label)
    dataset = tonic.datasets.POKERDVS(str(tmp_path), train=True)
    assert len(dataset) == 24
    for index in range(len(dataset)):
        theirs, target = dataset[index]
        path, label = by_length[len(theirs)]
        assert target == label
        np.testing.assert_array_equal(_as_columns(read_tonic_npy(path)), _as_columns(theirs))


def test_tonic_npy_signed_polarity_is_mapped(tmp_path: Path) -> None:
    path = tmp_path / "signed.npy"
    np.save(path, np.array([[10, 1, 2, -1], [20, 3, 4, 1]], dtype=np.int32))
    events = read_tonic_npy(path)
    assert events["p"].tolist() == [0, 1]
    assert events["t"].tolist() == [10, 20]


def test_tonic_npy_truncated_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "cut.npy"
    write_tonic_npy(path, _random_events(np.random.default_rng(5), 40, 35, 35, 1000))
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(EventFormatError, match=r"cut\.npy.*truncated"):
        read_tonic_npy(path)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.arange(8), r"expected a 2-D array \[N, 4\].*found shape \(8,\)"),
        (np.zeros((5, 3), dtype=np.int64), r"found shape \(5, 3\)"),
        (np.zeros((5, 4), dtype=np.float64), "expected an integer array.*float64"),
        (np.zeros((0, 4), dtype=np.int64), "holds no events"),
        (np.array([[0, 35, 1, 1]]), r"x outside \[0, 35\)"),
        (np.array([[0, 1, 70000, 1]]), "int16 range"),
    ],
)
def test_tonic_npy_bad_arrays_are_rejected(tmp_path: Path, array: np.ndarray, message: str) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(EventFormatError, match=r"bad\.npy.*" + message):
        read_tonic_npy(path)


def test_tonic_npy_other_sensor_and_empty(tmp_path: Path) -> None:
    path = tmp_path / "big.npy"
    events = _random_events(np.random.default_rng(6), 30, 128, 128, 1000)
    write_tonic_npy(path, events, sensor_size=SensorSize(128, 128, 2))
    with pytest.raises(EventFormatError, match="sensor width"):
        read_tonic_npy(path)
    np.testing.assert_array_equal(read_tonic_npy(path, sensor_size=None), events)
    np.save(tmp_path / "none.npy", np.zeros((0, 4), dtype=np.int64))
    assert len(read_tonic_npy(tmp_path / "none.npy", allow_empty=True)) == 0
