"""The DHP19 DataModule on the synthetic stand-in: timing, representations, labels, 3D geometry."""

import math
import shutil
import warnings

import h5py
import numpy as np
import pytest
import torch

from event_lightning.data.datasets.dhp19 import (
    DHP19Crop,
    DHP19DataModule,
    DHP19Sampling,
    SyntheticDHP19DataModule,
    find_recordings,
    subject_of,
)
from event_lightning.events.core import EventFormatError
from event_lightning.events.formats.dhp19_h5 import (
    DHP19_SENSOR_SIZE,
    DHP19EventFile,
    read_dhp19_labels,
    read_projection_matrices,
)
from event_lightning.events.represent.frames import to_frame
from event_lightning.events.represent.histogram import stacked_histogram
from event_lightning.metrics.triangulation import CAMERA_TO_P_INDEX, project_to_crop, triangulate
from event_lightning.models.pose.base import LabelledSteps


@pytest.fixture(scope="module")
def root(dhp19_two_cameras):
    return dhp19_two_cameras("dhp19")


def _module(root, **kwargs) -> DHP19DataModule:
    defaults = dict(camera_views=[3], cnn_event_count=1500, train_subjects=[1], test_subjects=[13])
    return DHP19DataModule(root=str(root), **{**defaults, **kwargs})


def _crop_pool(frames: np.ndarray, f: int) -> np.ndarray:
    """Independent path: full-sensor counts -> crop rows 2:258, cols 34:290 -> f x f sum pooling."""
    crop = frames[..., 2:258, 34:290]
    return crop.reshape(*crop.shape[:-2], 256 // f, f, 256 // f, f).sum(axis=(-3, -1))


def test_synthetic_files_are_read_back_by_the_real_reader(root):
    recordings = find_recordings(root, subjects=[1, 13])
    assert [r.stem for r in recordings] == ["S13_session1_mov1", "S1_session1_mov1"]
    with DHP19EventFile(recordings[0].events_path) as f:
        assert f.cameras == [2, 3]
        events = f.events(3)
        assert len(events) > 20_000
        assert np.all(np.diff(events["t"]) >= 0)
    poses, timestamps = read_dhp19_labels(recordings[0].label_path)
    assert poses.shape == (60, 3, 13) and timestamps[0] == 10_000 and timestamps[-1] == 600_000
    assert subject_of("S16_session2_mov1") == 16 and subject_of("readme") is None


def test_triangulating_the_ground_truth_gives_back_the_3d_joints(root):
    poses, _ = read_dhp19_labels(root / "S1_session1_mov1_label.h5")
    joints = torch.from_numpy(poses.transpose(0, 2, 1))  # [N, 13, 3] mm
    matrices, positions = read_projection_matrices(root, [CAMERA_TO_P_INDEX[2], CAMERA_TO_P_INDEX[3]])
    projections = torch.from_numpy(np.stack([matrices[CAMERA_TO_P_INDEX[c]] for c in (2, 3)]))
    centres = torch.from_numpy(np.stack([positions[CAMERA_TO_P_INDEX[c] - 1] for c in (2, 3)]))
    pixels = torch.stack([project_to_crop(joints, p) for p in projections])
    recovered = triangulate(pixels, projections, centres)
    assert (recovered - joints).norm(dim=-1).max().item() < 1.0  # mm
    # The crop sees the figure: most joints project inside the 256 x 256 crop.
    inside = ((pixels >= 0) & (pixels < 256)).all(-1).double().mean().item()
    assert inside > 0.95


def test_window_timing_and_labels_follow_the_reference(root):
    dm = _module(root, mode="hybrid", window_ms=100, step_ms=100)
    dataset = dm.split("train")
    with DHP19EventFile(root / "S1_session1_mov1_events.h5") as f:
        t_ref = int(f.events(3)["t"][1500])
        table_length = len(f.ms_to_idx(3))
    first = 100 * math.ceil(t_ref / 100_000)
    length = min(table_length, 60 * 10 + 10)
    expected = [first + 100 * k for k in range((length - first - 100) // 100)]
    assert [ms for _, _, ms in dataset.index] == expected
    sample = dataset.dense_sample(1)
    ms_start = expected[1]
    poses, _ = read_dhp19_labels(root / "S1_session1_mov1_label.h5")
    projection = dataset.projection[3]
    joints = poses.transpose(0, 2, 1)
    cnn_xy = project_to_crop(torch.from_numpy(joints[ms_start // 10 - 1]), torch.from_numpy(projection))
    torch.testing.assert_close(sample["cnn_landmarks"], cnn_xy.float(), rtol=0, atol=1e-4)
    window_xy = project_to_crop(
        torch.from_numpy(joints[ms_start // 10 : ms_start // 10 + 10]), torch.from_numpy(projection)
    )
    torch.testing.assert_close(sample["landmarks"], window_xy.float(), rtol=0, atol=1e-4)
    assert sample["label_steps"].tolist() == list(range(10))
    assert sample["events"].shape == (10, 2, 256, 256) and sample["cnn_input"].shape == (20, 256, 256)
    assert "cnn_input_next" in sample and dm.n_time_steps == 10


def test_representations_equal_full_sensor_counts_cropped_and_pooled(root):
    f = 4
    dm = _module(root, mode="hybrid", downsample=f)
    dataset = dm.split("train")
    _, _, ms_start = dataset.index[2]
    sample = dataset.dense_sample(2)
    with DHP19EventFile(root / "S1_session1_mov1_events.h5") as rec:
        table, events = rec.ms_to_idx(3), rec.events(3)
    before = events[max(table[ms_start] - 1500, 0) : table[ms_start]]
    cnn = stacked_histogram(before, DHP19_SENSOR_SIZE, 10, channel_order="polarity_major")
    np.testing.assert_array_equal(sample["cnn_input"].numpy(), _crop_pool(cnn, f))
    window = events[table[ms_start] : table[ms_start + 100]]
    bins = to_frame(
        window, DHP19_SENSOR_SIZE, time_window=10_000, start_time=ms_start * 1000, end_time=(ms_start + 100) * 1000
    )
    np.testing.assert_array_equal(sample["events"].numpy(), _crop_pool(bins, f))
    after = events[table[ms_start + 100] - 1500 : table[ms_start + 100]]
    following = stacked_histogram(after, DHP19_SENSOR_SIZE, 10, channel_order="polarity_major")
    np.testing.assert_array_equal(sample["cnn_input_next"].numpy(), _crop_pool(following, f))
    # The reference's event-normalised bins differ from window-aligned ones, and are reproduced.
    reference = _module(root, mode="sequence", downsample=f, bin_alignment="events").split("train")
    ms = reference.index[2][2]
    window = events[table[ms] : table[ms + 100]]
    expected = _crop_pool(stacked_histogram(window, DHP19_SENSOR_SIZE, 10), f)
    np.testing.assert_array_equal(reference.dense_sample(2)["events"].numpy(), expected)


def test_landmarks_are_pooled_and_out_of_crop_joints_are_nan(root):
    crop = DHP19Crop(downsample=8)
    projection = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1.0]])
    points = np.array([[[50.0, 200.0, 0.0], [20.0, 200.0, 0.0], [np.nan, 1.0, 1.0]]])
    out = crop.landmarks(points, projection)
    np.testing.assert_allclose(out[0, 0], [(50 - 34) / 8, (260 - 200 - 2) / 8])
    assert np.isnan(out[0, 1]).all() and np.isnan(out[0, 2]).all()


@pytest.mark.parametrize("bin_ms", [10, 5, 2])
@pytest.mark.parametrize("window_ms", [100, 200])
@pytest.mark.parametrize("eval_steps", [None, 1, 7, 10, 15, 100])
def test_models_find_the_labelled_steps_from_the_shapes_as_the_sampling_places_them(bin_ms, window_ms, eval_steps):
    sampling = DHP19Sampling(mode="sequence", bin_ms=bin_ms, window_ms=window_ms)
    labelled = LabelledSteps.of(sampling.n_steps, sampling.n_labels, eval_steps)
    steps = sampling.label_steps
    expected = steps if eval_steps is None else steps[steps < eval_steps]
    assert list(range(sampling.n_steps))[labelled.steps] == expected.tolist()
    assert labelled.count == len(expected) and labelled.n_run == (expected[-1] + 1 if len(expected) else 0)


def test_200hz_windows_label_every_second_step():
    sampling = DHP19Sampling(mode="sequence", bin_ms=5)
    assert sampling.n_steps == 20 and sampling.label_steps.tolist() == list(range(1, 20, 2))
    with pytest.raises(ValueError, match="divide the 10 ms"):
        DHP19Sampling(bin_ms=3)
    with pytest.raises(ValueError, match="mode"):
        DHP19Sampling(mode="video")


def test_stacked_views_and_loaders(root):
    dm = _module(root, mode="sequence", camera_views=[2, 3], stack_test_views=True, batch_size=2, eval_batch_size=3)
    dm.setup("fit")
    train_batch = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert train_batch["events"].shape == (2, 10, 2, 256, 256)
    val_batch = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    assert val_batch["events"].shape == (3, 2, 10, 2, 256, 256)
    assert val_batch["projection"].shape == (3, 2, 3, 4) and val_batch["label_3d"].shape == (3, 10, 13, 3)
    assert val_batch["camera"][0].tolist() == [2, 3]


def test_non_monotonic_recording_is_skipped_with_a_count_or_raises(root, tmp_path):
    for name in ("S1_session1_mov1", "S13_session1_mov1"):
        for suffix in ("_events.h5", "_label.h5"):
            shutil.copy(root / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    for name in ("P1.npy", "P2.npy", "P3.npy", "P4.npy", "camera_positions.npy"):
        shutil.copy(root / name, tmp_path / name)
    bad = tmp_path / "S16_session2_mov1_events.h5"
    shutil.copy(root / "S13_session1_mov1_events.h5", bad)
    shutil.copy(root / "S13_session1_mov1_label.h5", tmp_path / "S16_session2_mov1_label.h5")
    with h5py.File(bad, "r+") as f:
        t = f["cam3_events/t"][:]
        t[1000] = t[999] - 20_000
        f["cam3_events/t"][...] = t
    dm = _module(tmp_path, test_subjects=[13, 16])
    with pytest.warns(UserWarning, match=r"skipped 1 recording\(s\).*S16_session2_mov1_events\.h5.*not monotonic"):
        dataset = dm.split("test")
    assert [s.recording.stem for s in dataset.sources] == ["S13_session1_mov1"]
    with pytest.raises(EventFormatError, match="S16_session2_mov1_events.h5"):
        _module(tmp_path, test_subjects=[16], on_non_monotonic="raise").split("test")


def test_missing_folder_and_missing_labels_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="SyntheticDHP19DataModule"):
        _module(tmp_path / "nowhere").split("train")
    (tmp_path / "S2_session1_mov1_events.h5").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="S2_session1_mov1_label.h5"):
        find_recordings(tmp_path, [2])


def test_cache_returns_the_same_tensors(root, tmp_path):
    kwargs = dict(mode="hybrid", downsample=8, cache_dir=str(tmp_path / "cache"))
    first = _module(root, **kwargs).split("train").dense_sample(1)
    cached_dataset = _module(root, **kwargs).split("train")
    assert 1 in cached_dataset.cache
    second = cached_dataset.dense_sample(1)
    for key in ("cnn_input", "events", "cnn_input_next", "landmarks"):
        torch.testing.assert_close(first[key], second[key], equal_nan=True)


def test_synthetic_datamodule_writes_once_per_configuration(tmp_path):
    dm = SyntheticDHP19DataModule(
        root=str(tmp_path), subjects=[1, 13], duration_ms=300, downsample=8, cnn_event_count=500
    )
    assert dm.sensor_size.width == 32
    dm.setup("fit")
    marker = dm.root / "synthetic_dhp19.json"
    stamp = marker.stat().st_mtime_ns
    assert len(dm.split("train")) > 0 and len(dm.split("val")) > 0
    SyntheticDHP19DataModule(root=str(tmp_path), subjects=[1, 13], duration_ms=300).prepare_data()
    assert marker.stat().st_mtime_ns == stamp
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        other = SyntheticDHP19DataModule(root=str(tmp_path), subjects=[1, 13], duration_ms=300, seed=1)
    assert other.root != dm.root


def test_every_mode_uses_the_same_windows(root):
    windows = {mode: _module(root, mode=mode).split("train").index for mode in ("cnn", "sequence", "hybrid")}
    assert windows["cnn"] == windows["sequence"] == windows["hybrid"] and windows["cnn"]


def test_label_timestamps_off_the_10ms_grid_are_reported(root, tmp_path, caplog):
    for name in ("P1.npy", "P2.npy", "P3.npy", "P4.npy", "camera_positions.npy", "S1_session1_mov1_events.h5"):
        shutil.copy(root / name, tmp_path / name)
    poses, timestamps = read_dhp19_labels(root / "S1_session1_mov1_label.h5")
    with h5py.File(tmp_path / "S1_session1_mov1_label.h5", "w") as f:
        f["XYZ/3d_poses"] = poses
        f["XYZ/timestamps"] = timestamps + 5_000
    with caplog.at_level("WARNING"):
        dataset = _module(tmp_path).split("train")
    assert "S1_session1_mov1_label.h5: XYZ/timestamps are not (k + 1) * 10 ms" in caplog.text
    assert len(dataset) > 0
