"""MPJPE metric and two-view triangulation."""

import math

import numpy as np
import pytest
import torch

from event_lightning.metrics.mpjpe import MPJPE, per_sample_joint_error
from event_lightning.metrics.triangulation import crop_to_image_plane, project_to_crop, triangulate


def test_per_sample_error_ignores_nan_joints():
    pred = torch.tensor([[[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]]])
    target = torch.tensor([[[0.0, 0.0], [0.0, 0.0], [float("nan"), 1.0]]])
    error, valid = per_sample_joint_error(pred, target)
    assert error.item() == pytest.approx(2.5) and valid.item()


def test_mpjpe_per_step_curve_window_mean_and_last_step():
    metric = MPJPE(n_steps=3)
    target = torch.zeros(2, 3, 2, 2)
    pred = torch.zeros(2, 3, 2, 2)
    pred[:, 0, :, 0] = 1.0  # 1 px at step 0
    pred[0, 2, :, 1] = 2.0  # sample 0: 2 px at step 2; sample 1: 0
    target_nan = target.clone()
    target_nan[1, 1] = float("nan")  # sample 1 step 1 has no label: not counted
    pred[0, 1, :, 0] = 4.0
    metric.update(pred, target_nan)
    metric.update(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2))
    curve = metric.compute()
    torch.testing.assert_close(curve, torch.tensor([2 / 3, 4 / 2, 2 / 3], dtype=torch.float64))
    assert MPJPE.window_mean(curve).item() == pytest.approx((2 / 3 + 2 + 2 / 3) / 3)
    assert MPJPE.last_step(curve).item() == pytest.approx(2 / 3)


def test_mpjpe_rejects_wrong_shapes_and_sizes_itself_lazily():
    with pytest.raises(ValueError, match="n_steps=2"):
        MPJPE(n_steps=2).update(torch.zeros(1, 3, 4, 2), torch.zeros(1, 3, 4, 2))
    metric = MPJPE()
    metric.update(torch.ones(2, 4, 5, 2), torch.zeros(2, 4, 5, 2))
    torch.testing.assert_close(metric.compute(), torch.full((4,), 2**0.5, dtype=torch.float64))
    with pytest.raises(ValueError, match="B, 4, J, D"):
        metric.update(torch.ones(2, 3, 5, 2), torch.zeros(2, 3, 5, 2))
    metric.reset()
    metric.update(torch.ones(1, 5, 2), torch.zeros(1, 5, 2))
    assert MPJPE.last_step(metric.compute()).item() == pytest.approx(2**0.5)


def _look_at_projection(centre: np.ndarray, focal: float = 300.0) -> np.ndarray:
    """A DHP19-style P: pinhole looking at the origin, rows of the image flipped (v up)."""
    forward = -centre / np.linalg.norm(centre)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])
    k_row = np.array([[focal, 0, 173.0], [0, focal, 130.0], [0, 0, 1]])
    flip = np.array([[1.0, 0, 0], [0, -1.0, 260.0], [0, 0, 1.0]])  # P gives v' = 260 - row
    return flip @ k_row @ np.hstack([rotation, -rotation @ centre[:, None]])


def test_triangulation_recovers_points_to_below_a_micrometre():
    rng = np.random.default_rng(0)
    centres = np.array([[3500.0, -1200.0, 900.0], [-800.0, -3400.0, 1100.0]])
    projections = np.stack([_look_at_projection(c) for c in centres])
    points = rng.uniform(-600, 600, size=(4, 13, 3))
    points[..., 2] += 900
    crop = torch.stack([project_to_crop(torch.tensor(points), torch.tensor(p)) for p in projections])
    recovered = triangulate(crop, torch.tensor(projections), torch.tensor(centres))
    assert recovered.shape == (4, 13, 3)
    assert (recovered - torch.tensor(points)).norm(dim=-1).max().item() < 1e-3


def test_triangulation_of_noisy_pixels_is_the_least_squares_point_and_nan_propagates():
    centres = np.array([[3000.0, 0.0, 1000.0], [0.0, -3000.0, 1000.0]])
    projections = torch.tensor(np.stack([_look_at_projection(c) for c in centres]))
    point = torch.tensor([[100.0, -50.0, 1000.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    crop = torch.stack([project_to_crop(point, p) for p in projections])
    crop[0, 0, 0] += 1.0  # one pixel off in view 0: the 3D error is a few mm, not zero
    crop[1, 1, 1] = float("nan")
    out = triangulate(crop, projections, torch.tensor(centres))
    error = (out[0] - point[0]).norm().item()
    assert 0.1 < error < 30
    assert torch.isnan(out[1]).all()


def test_projection_flips_rows_and_subtracts_the_crop_offset():
    projection = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1.0]], dtype=torch.float64)
    xy = project_to_crop(torch.tensor([[50.0, 200.0, 7.0]], dtype=torch.float64), projection)
    assert xy.tolist() == [[16.0, 58.0]]
    torch.testing.assert_close(crop_to_image_plane(xy), torch.tensor([[50.0, 200.0]], dtype=torch.float64))
    assert math.isclose(260 - 200 - 2, 58)
