"""The hybrid pose method's reference mode (issue 18, items 6-10): where the reference code's
behaviour differs from the project's default, the option that reproduces it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from event_lightning.data.datasets.dhp19 import DHP19Crop
from event_lightning.models.pose import PoseCNN, PoseHybridCNNRNN, PoseHybridCNNSNN


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
