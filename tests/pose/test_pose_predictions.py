"""What ``predict`` returns for the pose models: 2D joints in crop pixels and, with stacked camera
views, 3D joints in mm triangulated from them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from event_lightning.callbacks.predictions import stack_predictions
from event_lightning.data.datasets.dhp19 import DHP19DataModule
from event_lightning.metrics.triangulation import triangulate
from event_lightning.models.pose import PoseCNN, PoseSNN
from event_lightning.nn.pose.heatmaps import render_heatmaps


@pytest.fixture(scope="module")
def root(dhp19_two_cameras):
    return dhp19_two_cameras("dhp19_predict")


def _stacked_batch(root, mode: str) -> dict:
    data = DHP19DataModule(
        root=str(root),
        mode=mode,
        camera_views=[2, 3],
        stack_test_views=True,
        cnn_event_count=1500,
        train_subjects=[1],
        test_subjects=[13],
        eval_batch_size=3,
    )
    data.setup("predict")
    return data.on_after_batch_transfer(next(iter(data.predict_dataloader())), 0)


def test_cnn_predicts_3d_joints_from_the_views_it_sees(root):
    batch = _stacked_batch(root, "cnn")
    model = PoseCNN(in_channels=batch["cnn_input"].shape[2], n_joints=13, base_channels=4).eval()
    # an oracle network: heatmaps peaking at the labelled joints of every view
    landmarks = batch["cnn_landmarks"].flatten(0, 1)
    height, width = batch["cnn_input"].shape[-2:]
    model.forward = lambda x: render_heatmaps(landmarks, height, width)
    with torch.no_grad():
        out = model.predict_step(batch, 0)
    assert out["joints_2d"].shape == (3, 2, 13, 2) and out["joints_3d"].shape == (3, 13, 3)
    assert out["camera"].tolist() == batch["camera"].tolist()
    scale = float(batch["pixel_scale"].flatten()[0]) if "pixel_scale" in batch else 1.0
    expected_2d = torch.trunc(batch["cnn_landmarks"]) * scale + (scale - 1) / 2
    valid = torch.isfinite(expected_2d)
    torch.testing.assert_close(out["joints_2d"][valid], expected_2d[valid])
    projection, centre = batch["projection"][0], batch["camera_centre"][0]
    torch.testing.assert_close(
        out["joints_3d"], triangulate(out["joints_2d"].transpose(0, 1), projection, centre).float(), equal_nan=True
    )
    # the oracle's only error is the truncation to grid pixels: centimetres, not metres
    error = torch.linalg.vector_norm(out["joints_3d"] - batch["cnn_label_3d"].float(), dim=-1)
    assert torch.isfinite(error).sum() > 10
    assert float(error[torch.isfinite(error)].mean()) < 60.0


def test_sequence_models_predict_2d_per_step_and_3d(root):
    batch = _stacked_batch(root, "sequence")
    torch.manual_seed(0)
    model = PoseSNN(n_joints=13, base_channels=4).eval()
    with torch.no_grad():
        out = model.predict_step(batch, 0)
    steps = batch["events"].shape[2]
    assert out["joints_2d"].shape == (3, 2, steps, 13, 2) and out["joints_3d"].shape == (3, steps, 13, 3)
    stacked = stack_predictions([out, out])
    assert stacked["joints_3d"].shape == (6, steps, 13, 3) and stacked["joints_3d"].dtype == np.float32


def test_single_view_predictions_have_no_view_axis_and_no_3d(root):
    data = DHP19DataModule(
        root=str(root), mode="cnn", camera_views=[3], cnn_event_count=1500, train_subjects=[1], test_subjects=[13]
    )
    data.setup("predict")
    batch = data.on_after_batch_transfer(next(iter(data.predict_dataloader())), 0)
    model = PoseCNN(in_channels=batch["cnn_input"].shape[1], n_joints=13, base_channels=4).eval()
    with torch.no_grad():
        out = model.predict_step(batch, 0)
    assert out["joints_2d"].shape == (len(batch["cnn_input"]), 13, 2) and "joints_3d" not in out
