"""Gaussian heatmap targets (torchvision gaussian_blur semantics) and argmax decoding."""

import pytest
import torch
import torch.nn.functional as F

from event_lightning.nn.pose.heatmaps import (
    argmax_decode,
    gaussian_kernel_size,
    render_heatmaps,
    valid_joints,
)


def _dense_reference(coords: torch.Tensor, height: int, width: int, sigma: float) -> torch.Tensor:
    """The reference's way: a dense one-hot image, reflect-padded 2-D blur, divided by its max."""
    size = gaussian_kernel_size(sigma)
    x = torch.linspace(-(size - 1) / 2, (size - 1) / 2, size, dtype=torch.float64)
    k1 = torch.exp(-0.5 * (x / sigma) ** 2)
    k1 = k1 / k1.sum()
    kernel = (k1[:, None] * k1[None, :])[None, None]
    maps = torch.zeros(coords.shape[0], height, width, dtype=torch.float64)
    for j, (cx, cy) in enumerate(coords.tolist()):
        if cx == cx and cy == cy and 0 <= int(cx) < width and 0 <= int(cy) < height:
            maps[j, int(cy), int(cx)] = 1.0
    blurred = F.conv2d(F.pad(maps[:, None], (size // 2,) * 4, mode="reflect"), kernel)[:, 0]
    peak = blurred.flatten(1).amax(1).clamp(min=1e-300)
    return blurred / peak[:, None, None]


def test_kernel_size_of_the_reference():
    assert gaussian_kernel_size(2.0) == 11


def test_matches_dense_blur_including_borders_and_invalid_joints():
    coords = torch.tensor(
        [[10.7, 20.2], [0.0, 0.0], [2.9, 30.0], [47.99, 39.5], [float("nan"), 5.0], [48.0, 3.0], [-0.5, 4.0]],
        dtype=torch.float64,
    )
    ours = render_heatmaps(coords, 40, 48, sigma=2.0, dtype=torch.float64)
    expected = _dense_reference(coords, 40, 48, 2.0)
    torch.testing.assert_close(ours, expected)
    assert ours[4].abs().sum() == 0 and ours[5].abs().sum() == 0
    # int() truncates -0.5 to 0, as the reference's int32 cast does: the joint stays on the map.
    assert ours[6].max() == 1.0


def test_peak_is_one_at_the_truncated_pixel_and_round_trips():
    torch.manual_seed(0)
    coords = torch.rand(3, 5, 13, 2) * torch.tensor([64.0, 48.0])
    maps = render_heatmaps(coords, 48, 64, border="zeros")
    assert maps.shape == (3, 5, 13, 48, 64)
    assert torch.allclose(maps.flatten(-2).amax(-1), torch.ones(3, 5, 13))
    torch.testing.assert_close(argmax_decode(maps), torch.trunc(coords))
    # Reflect padding (the reference) round-trips too, away from the 3-pixel border band.
    inner = torch.rand(4, 13, 2) * torch.tensor([58.0, 42.0]) + 3
    torch.testing.assert_close(argmax_decode(render_heatmaps(inner, 48, 64)), torch.trunc(inner))


def test_reflect_padding_moves_the_peak_of_joints_next_to_the_border():
    coords = torch.tensor([[1.0, 20.0], [2.0, 20.0], [3.0, 20.0], [62.5, 20.0]])
    decoded = argmax_decode(render_heatmaps(coords, 48, 64))
    assert decoded[:, 0].tolist() == [0.0, 0.0, 3.0, 63.0]


def test_argmax_decode_convention():
    maps = torch.zeros(2, 4, 6)
    maps[0, 3, 5] = 1
    maps[1, 1, 2] = 2
    maps[1, 2, 0] = 2  # a tie: the first in row-major order wins
    assert argmax_decode(maps).tolist() == [[5.0, 3.0], [2.0, 1.0]]


@pytest.mark.parametrize(
    ("xy", "expected"),
    [((3.0, 2.0), True), ((float("nan"), 1.0), False), ((6.0, 1.0), False), ((1.0, 4.2), False)],
)
def test_valid_joints(xy, expected):
    assert bool(valid_joints(torch.tensor([xy]), 4, 6)[0]) is expected
