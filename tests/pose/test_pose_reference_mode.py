"""The hybrid pose method's reference mode (issue 18, items 6-10): where the reference code's
behaviour differs from the project's default, the option that reproduces it."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from event_lightning.data.datasets.dhp19 import DHP19Crop, DHP19DataModule
from event_lightning.data.datasets.dhp19.voxel import pose_voxel_grid
from event_lightning.events.core import make_events
from event_lightning.events.formats.dhp19_h5 import (
    DHP19_SENSOR_SIZE,
    DHP19EventFile,
    write_dhp19_events,
    write_dhp19_labels,
    write_projection_matrices,
)
from event_lightning.metrics.mpjpe import MPJPE
from event_lightning.metrics.triangulation import project_to_crop
from event_lightning.models.pose import PoseCNN, PoseHybridCNNRNN, PoseHybridCNNSNN, PoseRNN, PoseSNN


def _xavier_std(conv: torch.nn.Conv2d) -> float:
    fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    return (2.0 / (fan_in + fan_out)) ** 0.5


def test_pose_cnn_uses_plain_xavier_as_the_reference_cnn_trainer():
    """train_cnn_model.py applies init_weights (no /2500) to the CNN."""
    torch.manual_seed(0)
    head = PoseCNN(base_channels=8).net.head
    assert head.weight.std().item() == pytest.approx(_xavier_std(head), rel=0.2)


def test_hybrid_cnn_rnn_divides_its_rnn_prediction_conv_by_2500():
    """init_weights_div_last_layer divides every 32->13 Conv2d: in the CNN-RNN hybrid that is the
    RNN's prediction conv (the CNN's head is then replaced by the pretrained CNN)."""
    torch.manual_seed(0)
    pred = PoseHybridCNNRNN(base_channels=32, cnn_base_channels=4).net.rnn.pred[0]
    assert (pred.in_channels, pred.out_channels) == (32, 13)
    assert pred.weight.std().item() == pytest.approx(_xavier_std(pred) / 2500, rel=0.2)


def test_hybrid_cnn_snn_tail_is_not_divided():
    """The SNN's tail is 64->13: the reference's /2500 rule (32->13 only) leaves it alone."""
    torch.manual_seed(0)
    tail = PoseHybridCNNSNN(base_channels=32, cnn_base_channels=4).net.snn.tail
    assert tail.weight.std().item() == pytest.approx(_xavier_std(tail), rel=0.2)


@pytest.mark.parametrize("downsample", [1, 8])
def test_joints_left_of_or_above_the_crop_are_dropped_before_truncation(downsample):
    """The reference masks u < 34 or v < 2 (sensor pixels) before its int cast: crop x = -0.5
    must be NaN, not truncated onto pixel 0."""
    projection = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1.0]])  # u = X, v = 260 - Y
    crop_xy = np.array([[-0.5, 10.0], [10.0, -0.3], [0.2, 5.0], [255.9, 255.9], [256.0, 3.0], [-1.0, 3.0]])
    points = np.stack([crop_xy[:, 0] + 34, 260 - (crop_xy[:, 1] + 2), np.zeros(len(crop_xy))], -1)
    out = DHP19Crop(downsample=downsample).landmarks(points, projection)
    inside = np.isfinite(out).all(-1)
    assert inside.tolist() == [False, False, True, True, False, False]
    np.testing.assert_allclose(out[inside], crop_xy[inside] / downsample, rtol=1e-5)


# A recording whose edges are known: 1000 ms of events (ms_to_idx has 1000 entries), 100 labels
# (so L = min(1000, 10 * 100 + 10) = 1000), t[1500] at ~75 ms (first constant-count start 100 ms),
# every event and joint inside the crop.
_N_EVENTS, _N_LABELS, _COUNT = 20_000, 100, 1500


@pytest.fixture(scope="module")
def edge_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("dhp19_edges")
    rng = np.random.default_rng(0)
    t = np.sort(rng.integers(0, 1_000_000, _N_EVENTS))
    events = make_events(
        rng.integers(34, 290, _N_EVENTS), rng.integers(2, 258, _N_EVENTS), t, rng.integers(0, 2, _N_EVENTS)
    )
    write_dhp19_events(root / "S1_session1_mov1_events.h5", {3: events}, n_ms=1000)
    poses = np.zeros((_N_LABELS, 3, 13))
    poses[:, 0], poses[:, 1] = 150.0, 130.0  # u = 150, v = 260 - 130: inside the crop
    write_dhp19_labels(root / "S1_session1_mov1_label.h5", poses, (np.arange(_N_LABELS) + 1) * 10_000)
    projection = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1.0]])
    write_projection_matrices(root, {k: projection for k in (1, 2, 3, 4)}, np.zeros((4, 3)))
    return root


def _edge_module(root, **kwargs) -> DHP19DataModule:
    """A DataModule on the edge recording (train and test: subject 1, camera 3)."""
    defaults = dict(camera_views=[3], cnn_event_count=_COUNT, train_subjects=[1], test_subjects=[1])
    return DHP19DataModule(root=str(root), **{**defaults, **kwargs})


def _starts(root, split: str = "train", **kwargs) -> list[int]:
    return [ms for _, _, ms in _edge_module(root, **kwargs).split(split).index]


def test_reference_windows_of_the_hybrid_loader_step_by_step_size_whatever_the_window(edge_root):
    """snn_dataloader with constant_count: floor((L - first - step) / step) windows, also for the
    200 ms test windows (the common rule keeps one fewer: floor((L - first - 200) / 100))."""
    with DHP19EventFile(edge_root / "S1_session1_mov1_events.h5") as f:
        first = 100 * int(np.ceil(f.events(3)["t"][_COUNT] / 100_000))
    assert first == 100
    reference = [first + 100 * k for k in range((1000 - first - 100) // 100)]
    for window in (100, 200):
        kwargs = dict(mode="hybrid", window_ms=100, test_window_ms=window)
        assert _starts(edge_root, "test", window_rule="reference", **kwargs) == reference
        common = _starts(edge_root, "test", **kwargs)
        assert common == reference[: (1000 - first - window) // 100]
    assert len(reference) - len(_starts(edge_root, "test", mode="hybrid", test_window_ms=200)) == 1


@pytest.mark.parametrize("mode", ["sequence", "hybrid"])
def test_reference_windows_without_constant_count_frames_start_at_0ms(edge_root, mode):
    """The SNN and RNN loaders (no constant_count) and the constant-duration CNN-RNN hybrid:
    ms_start = idx * step from 0, floor((L - T) / step) + 1 windows."""
    kwargs = dict(mode=mode, window_rule="reference", cnn_frame="duration" if mode == "hybrid" else "count")
    for window in (100, 200):
        expected = [100 * k for k in range((1000 - window) // 100 + 1)]
        assert _starts(edge_root, "test", test_window_ms=window, **kwargs) == expected


def test_reference_cnn_frames_start_at_the_100ms_grid_and_run_to_the_end(edge_root):
    """cnn_dataloader: floor((L - first) / step) frames from ceil(t[7500] / 100 ms) * 100 ms, also
    at 100 Hz (step 10 ms); held labels past the label file are NaN, not a reason to drop a frame."""
    assert _starts(edge_root, mode="cnn", window_rule="reference") == list(range(100, 1000, 100))
    dm = _edge_module(edge_root, mode="cnn", window_rule="reference", test_step_ms=10)
    test = dm.split("test")
    assert [ms for _, _, ms in test.index] == list(range(100, 1000, 10))
    last = test.dense_sample(len(test) - 1)
    assert torch.isfinite(last["cnn_landmarks"]).all()
    assert torch.isfinite(last["landmarks"][:1]).all() and torch.isnan(last["landmarks"][1:]).all()


def test_reference_window_at_the_end_of_ms_to_idx_takes_the_events_but_the_last(edge_root):
    """A window ending at len(ms_to_idx) reads events[idx_start:-1] (the reference's idx_end = -1)."""
    train = _edge_module(edge_root, mode="sequence", window_rule="reference").split("train")
    assert train.index[-1][2] == 900
    with DHP19EventFile(edge_root / "S1_session1_mov1_events.h5") as f:
        start = int(f.ms_to_idx(3)[900])
    assert train.dense_sample(len(train) - 1)["events"].sum().item() == _N_EVENTS - 1 - start


def test_reference_constant_duration_frame_before_the_recording_is_zero_with_label_0(edge_root):
    dm = _edge_module(edge_root, mode="hybrid", cnn_frame="duration", window_rule="reference", next_cnn_frame=False)
    sample = dm.split("train").dense_sample(0)
    assert sample["ms_start"] == 0 and sample["cnn_input"].abs().sum().item() == 0
    torch.testing.assert_close(sample["cnn_landmarks"], torch.tensor([[150.0 - 34, 130.0 - 2]] * 13))


def _voxel_by_hand(events: np.ndarray, n_bins: int, height: int, width: int) -> np.ndarray:
    """The reference's voxel grid, event by event: bilinear in time over t_norm = (C - 1)(t - t_0) /
    (t_last - t_0), value 2p - 1, then the non-zero cells standardised (unbiased std)."""
    grid = np.zeros((n_bins, height, width))
    t = events["t"].astype(np.float64)
    for e, t_e in zip(events, t, strict=True):
        t_norm = (n_bins - 1) * (t_e - t[0]) / (t[-1] - t[0])
        for b in (int(np.floor(t_norm)), int(np.floor(t_norm)) + 1):
            if 0 <= b < n_bins:
                grid[b, e["y"], e["x"]] += (2.0 * e["p"] - 1) * (1 - abs(b - t_norm))
    cells = grid[grid != 0]
    grid[grid != 0] = (cells - cells.mean()) / cells.std(ddof=1)
    return grid


def test_pose_voxel_grid_is_the_reference_voxel_grid():
    rng = np.random.default_rng(4)
    n = 300
    t = np.sort(rng.integers(0, 100_000, n))
    events = make_events(rng.integers(0, 346, n), rng.integers(0, 260, n), t, rng.integers(0, 2, n))
    ours = pose_voxel_grid(events, DHP19_SENSOR_SIZE, 10)
    assert ours.dtype == np.float32 and ours.shape == (10, 260, 346)
    np.testing.assert_allclose(ours, _voxel_by_hand(events, 10, 260, 346), rtol=1e-4, atol=1e-5)
    assert not pose_voxel_grid(events[:0], DHP19_SENSOR_SIZE, 10).any()


@pytest.mark.parametrize("mode", ["cnn", "sequence", "hybrid"])
def test_voxel_grid_samples_are_the_full_sensor_grid_cropped(edge_root, mode):
    """events: [T, 1, H, W] (one signed channel a bin); CNN frames: [cnn_bins, H, W]; both the
    reference grid of the full sensor, cropped (its standardisation sees the whole sensor)."""
    dm = _edge_module(edge_root, mode=mode, representation="voxel_grid", bin_alignment="events")
    train = dm.split("train")
    sample = train.dense_sample(2)
    ms = sample["ms_start"]
    with DHP19EventFile(edge_root / "S1_session1_mov1_events.h5") as f:
        table, all_events = f.ms_to_idx(3), f.events(3)
    crop = (slice(None), slice(2, 258), slice(34, 290))
    if mode != "cnn":
        window = all_events[table[ms] : table[ms + 100]]
        expected = pose_voxel_grid(window, DHP19_SENSOR_SIZE, 10)[crop]
        assert sample["events"].shape == (10, 1, 256, 256)
        np.testing.assert_allclose(sample["events"][:, 0].numpy(), expected, rtol=1e-6)
    if mode != "sequence":
        frame = all_events[table[ms] - _COUNT : table[ms]]
        assert sample["cnn_input"].shape == (10, 256, 256)
        np.testing.assert_allclose(sample["cnn_input"].numpy(), pose_voxel_grid(frame, DHP19_SENSOR_SIZE, 10)[crop])


def test_the_representation_is_part_of_the_cache_key(edge_root, tmp_path):
    keys = {}
    for representation in ("histogram", "voxel_grid"):
        dm = _edge_module(edge_root, mode="hybrid", representation=representation, cache_dir=str(tmp_path))
        train = dm.split("train")
        keys[representation] = train.cache.key
        assert train.cache.params["sampling"]["representation"] == representation
        built = train.dense_sample(1)
        assert 1 in train.cache  # written on first use, read back from the cache below
        for key, value in train.dense_sample(1).items():
            if isinstance(value, torch.Tensor):
                torch.testing.assert_close(value, built[key], equal_nan=True)
    assert keys["histogram"] != keys["voxel_grid"]


_VOXEL_MODELS = {
    "cnn": (PoseCNN, dict(in_channels=10)),
    "sequence-snn": (PoseSNN, dict(in_channels=1)),
    "sequence-rnn": (PoseRNN, dict(in_channels=1)),
    "hybrid-snn": (PoseHybridCNNSNN, dict(in_channels=1, cnn_in_channels=10)),
    "hybrid-rnn": (PoseHybridCNNRNN, dict(in_channels=1, cnn_in_channels=10)),
}


@pytest.mark.parametrize("name", list(_VOXEL_MODELS))
def test_every_pose_model_trains_on_voxel_grids(edge_root, name, single_thread):
    model_class, channels = _VOXEL_MODELS[name]
    torch.manual_seed(0)
    widths = dict(base_channels=4) | (dict(cnn_base_channels=4) if name.startswith("hybrid") else {})
    model = model_class(**channels, **widths)
    dm = _edge_module(
        edge_root, mode=name.split("-")[0], representation="voxel_grid", downsample=8, batch_size=2, num_workers=0
    )
    trainer = pl.Trainer(fast_dev_run=1, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False)
    before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    trainer.fit(model, datamodule=dm)
    after = [p for p in model.parameters() if p.requires_grad]
    assert trainer.global_step == 1
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
    assert all(torch.isfinite(p).all() for p in after)


def _camera(centre: list[float], yaw: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A 3x4 P = K [R | -R c] looking along +y rotated by ``yaw`` about z, and its centre c (mm)."""
    c, s = np.cos(yaw), np.sin(yaw)
    look = np.array([[c, -s, 0.0], [0.0, 0.0, -1.0], [s, c, 0.0]])  # rows: image x, image y, optical axis
    k = np.array([[300.0, 0, 173], [0, 300.0, 130], [0, 0, 1]])
    centre_mm = np.array(centre)
    p = k @ np.concatenate([look, -(look @ centre_mm)[:, None]], 1)
    return torch.from_numpy(p), torch.from_numpy(centre_mm)


def test_3d_mpjpe_scores_every_step_against_its_own_label():
    """The published 57.75 mm protocol (geometric_triangulation.py): step k against label k, not
    every step against the window's first label (inference/triangulation.py's bug)."""
    (p_a, c_a), (p_b, c_b) = _camera([0.0, -3000.0, 1000.0], 0.3), _camera([1500.0, -2500.0, 1000.0], -0.2)
    steps, joints = 4, 13
    rng = np.random.default_rng(5)
    labels = torch.from_numpy(rng.normal(0, 300, (1, steps, joints, 3)) + np.array([0.0, 0.0, 1000.0]))
    labels[:, :, :, 0] += torch.arange(steps)[None, :, None] * 50.0  # the figure moves 50 mm a step

    pred = torch.cat([project_to_crop(labels, p) for p in (p_a, p_b)])  # [B * V, L, J, 2], exact pixels
    batch = {"projection": torch.stack([p_a, p_b]), "camera_centre": torch.stack([c_a, c_b])}
    model = PoseSNN(base_channels=4)
    per_step, first_label = MPJPE(), MPJPE()
    model._score_3d(per_step, pred, batch, 2, labels.float(), 1.0)
    model._score_3d(first_label, pred, batch, 2, labels[:, :1].expand_as(labels).float(), 1.0)
    assert per_step.compute().abs().max().item() < 1e-3  # mm
    assert first_label.compute()[1:].min().item() > 40.0
