"""The DHP19 h5 reader and writer on fixture files, including broken recordings."""

import h5py
import numpy as np
import pytest

from event_lightning.events.core import EventFormatError, make_events
from event_lightning.events.formats.dhp19_h5 import (
    DHP19EventFile,
    ms_to_idx_table,
    read_dhp19_events,
    read_dhp19_labels,
    read_projection_matrices,
    write_dhp19_events,
    write_dhp19_labels,
    write_projection_matrices,
)


def _events(n: int, seed: int, duration_us: int = 50_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, duration_us, n))
    return make_events(rng.integers(0, 346, n), rng.integers(0, 260, n), t, rng.integers(0, 2, n))


def test_round_trip_with_one_based_pixels_and_ms_index(tmp_path):
    cams = {2: _events(500, 0), 3: _events(300, 1)}
    path = write_dhp19_events(tmp_path / "S1_session1_mov1_events.h5", cams)
    with h5py.File(path) as f:
        assert int(f["cam2_events/x"][:].min()) >= 1 and int(f["cam2_events/x"][:].max()) <= 346
        np.testing.assert_array_equal(f["cam2_events/x"][:], cams[2]["x"] + 1)
    with DHP19EventFile(path) as recording:
        assert recording.cameras == [2, 3]
        np.testing.assert_array_equal(recording.events(3), cams[3])
        table = recording.ms_to_idx(2)
        # ms_to_idx[m] is the first event at or after m ms.
        for m in (0, 7, 23, 49):
            assert table[m] == np.flatnonzero(cams[2]["t"] >= m * 1000)[0]
        np.testing.assert_array_equal(recording.events(2, table[10], table[20]), cams[2][table[10] : table[20]])
    events, table = read_dhp19_events(path, 2)
    np.testing.assert_array_equal(events, cams[2])
    assert len(table) == 51 and table[-1] == 500


def test_ms_to_idx_table_edges():
    t = np.array([0, 999, 1000, 1000, 2500])
    assert ms_to_idx_table(t).tolist() == [0, 2, 4, 5]
    assert ms_to_idx_table(t, n_ms=6).tolist() == [0, 2, 4, 5, 5, 5]


def test_non_monotonic_recording_is_rejected_naming_the_file(tmp_path):
    path = tmp_path / "S16_session2_mov1_events.h5"
    write_dhp19_events(path, {3: _events(200, 2)})
    with h5py.File(path, "r+") as f:
        t = f["cam3_events/t"][:]
        t[120] = t[119] - 5_000
        f["cam3_events/t"][...] = t
    with pytest.raises(
        EventFormatError, match=r"S16_session2_mov1_events\.h5.*cam3_events/t is not monotonic.*event 120"
    ):
        DHP19EventFile(path)
    with pytest.raises(EventFormatError, match="not monotonic"):
        read_dhp19_events(path, 3)


def test_truncated_file_cannot_be_opened(tmp_path):
    path = write_dhp19_events(tmp_path / "S2_session1_mov1_events.h5", {3: _events(5000, 3)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(EventFormatError, match=r"S2_session1_mov1_events\.h5: cannot open as HDF5.*truncated"):
        DHP19EventFile(path)


def test_fields_of_different_lengths_are_a_truncated_recording(tmp_path):
    path = tmp_path / "S3_session1_mov2_events.h5"
    write_dhp19_events(path, {2: _events(100, 4)})
    with h5py.File(path, "r+") as f:
        x = f["cam2_events/x"][:80]
        del f["cam2_events/x"]
        f["cam2_events/x"] = x
    with pytest.raises(EventFormatError, match=r"S3_session1_mov2.*different lengths.*'x': 80"):
        DHP19EventFile(path)


def test_missing_dataset_and_bad_ms_index(tmp_path):
    path = tmp_path / "S4_session1_mov1_events.h5"
    write_dhp19_events(path, {2: _events(100, 5)})
    with h5py.File(path, "r+") as f:
        del f["cam2_ms_to_idx"]
        f["cam2_ms_to_idx"] = np.array([0, 50, 400])
    with pytest.raises(EventFormatError, match=r"cam2_ms_to_idx must be non-decreasing indices in \[0, 100\]"):
        DHP19EventFile(path)
    with h5py.File(path, "r+") as f:
        del f["cam2_events/p"]
    with pytest.raises(EventFormatError, match="'cam2_events/p' is missing"):
        DHP19EventFile(path)


def test_pixels_outside_the_sensor_are_reported(tmp_path):
    path = tmp_path / "S5_session1_mov1_events.h5"
    write_dhp19_events(path, {1: _events(50, 6)})
    with h5py.File(path, "r+") as f:
        f["cam1_events/x"][3] = 0  # 1-based: 0 is outside
    with DHP19EventFile(path) as recording, pytest.raises(EventFormatError, match="x outside"):
        recording.events(1)


def test_labels_and_projection_matrices(tmp_path):
    poses = np.random.default_rng(0).normal(size=(7, 3, 13))
    poses[2, :, 4] = np.nan
    write_dhp19_labels(tmp_path / "S1_session1_mov1_label.h5", poses, (np.arange(7) + 1) * 10_000)
    read_poses, timestamps = read_dhp19_labels(tmp_path / "S1_session1_mov1_label.h5")
    np.testing.assert_array_equal(read_poses, poses)
    assert timestamps.tolist() == [10_000 * (k + 1) for k in range(7)]
    with h5py.File(tmp_path / "bad_label.h5", "w") as f:
        f["XYZ/3d_poses"] = np.zeros((5, 13, 3))
        f["XYZ/timestamps"] = np.zeros(5)
    with pytest.raises(EventFormatError, match=r"bad_label\.h5: XYZ/3d_poses must have shape \[N, 3, 13\]"):
        read_dhp19_labels(tmp_path / "bad_label.h5")
    matrices = {k: np.arange(12.0).reshape(3, 4) + k for k in (1, 2, 3, 4)}
    write_projection_matrices(tmp_path / "P", matrices, np.arange(12.0).reshape(4, 3))
    read_matrices, positions = read_projection_matrices(tmp_path / "P", [2, 3])
    np.testing.assert_array_equal(read_matrices[3], matrices[3])
    assert positions.shape == (4, 3)
    with pytest.raises(FileNotFoundError, match="P1..P4.npy"):
        read_projection_matrices(tmp_path, [2])
