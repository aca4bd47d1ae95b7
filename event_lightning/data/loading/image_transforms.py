"""Batched image transformations in torch: homography warps and hue rotation.

Pixel coordinates: pixel (row r, column c) sits at (x, y) = (c, r); the image centre is
((W - 1) / 2, (H - 1) / 2). A 3x3 matrix M maps source pixel coordinates to destination pixel
coordinates, ``dst(p) = src(M^-1 p)`` with bilinear sampling and zeros outside (the convention
of OpenCV's / kornia's warp_affine and warp_perspective). Angles are in degrees, hues in radians.

Everything runs where its inputs live, without host syncs: no tensors made from Python numbers,
no data-dependent branches, and a closed-form 3x3 inverse instead of ``torch.linalg.inv`` (which
reads its error flag on the host).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

TWO_PI = 2.0 * math.pi


def rotation_scale_matrix(angle_deg: Tensor, scale: Tensor, height: int, width: int) -> Tensor:
    """Rotation by ``angle_deg`` (counter-clockwise as displayed) and isotropic ``scale`` about the centre.

    The matrix of OpenCV's getRotationMatrix2D: [[a, b, (1-a)cx - b cy], [-b, a, b cx + (1-a) cy], [0, 0, 1]]
    with a = scale cos(angle), b = scale sin(angle).

    Args:
        angle_deg, scale: broadcastable tensors [...].
    Returns:
        [..., 3, 3].
    """
    angle_deg, scale = torch.broadcast_tensors(torch.as_tensor(angle_deg), torch.as_tensor(scale))
    radians = torch.deg2rad(angle_deg.double())
    a = scale.double() * torch.cos(radians)
    b = scale.double() * torch.sin(radians)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    rows = [
        torch.stack([a, b, (1 - a) * cx - b * cy], -1),
        torch.stack([-b, a, b * cx + (1 - a) * cy], -1),
        torch.stack([zero, zero, one], -1),
    ]
    return torch.stack(rows, -2).float()


def perspective_matrix(angle_deg: Tensor, height: int, width: int) -> Tensor:
    """Pinhole view of the image plane turned by ``angle_deg`` about both the y and the z axis.

    M = A2 T R A1: A1 lifts (x, y) to (x - w/2, y - h/2, 1), R = R_y(angle) R_z(angle), T moves
    the plane to depth f = d / (2 sin angle) (d the image diagonal; d when sin angle == 0), A2
    projects with focal length f about (w/2, h/2). As in the reference, 180 degrees is replaced
    by 181 (a degenerate view) and angle 0 is the identity.

    Args:
        angle_deg: [...].
    Returns:
        [..., 3, 3].
    """
    angle_deg = torch.as_tensor(angle_deg).double()
    is_identity = angle_deg == 0
    angle = torch.deg2rad(torch.where(angle_deg == 180.0, torch.full_like(angle_deg, 181.0), angle_deg))
    w, h = float(width), float(height)
    diagonal = math.hypot(h, w)
    sin, cos = torch.sin(angle), torch.cos(angle)
    focal = torch.where(sin != 0, diagonal / (2.0 * sin), torch.full_like(sin, diagonal))
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)

    def entry(value: Tensor | float) -> Tensor:
        return value if isinstance(value, Tensor) else torch.full_like(angle, value)

    def matrix(rows: list[list[Tensor | float]]) -> Tensor:
        return torch.stack([torch.stack([entry(v) for v in row], -1) for row in rows], -2)

    lift = matrix([[one, zero, -w / 2], [zero, one, -h / 2], [zero, zero, one], [zero, zero, one]])
    rot_y = matrix([[cos, zero, -sin, zero], [zero, one, zero, zero], [sin, zero, cos, zero], [zero, zero, zero, one]])
    rot_z = matrix([[cos, -sin, zero, zero], [sin, cos, zero, zero], [zero, zero, one, zero], [zero, zero, zero, one]])
    shift = matrix(
        [[one, zero, zero, zero], [zero, one, zero, zero], [zero, zero, one, focal], [zero, zero, zero, one]]
    )
    project = matrix([[focal, zero, w / 2, zero], [zero, focal, h / 2, zero], [zero, zero, one, zero]])
    m = project @ shift @ rot_y @ rot_z @ lift
    eye = torch.eye(3, dtype=torch.float64, device=m.device).expand_as(m)
    return torch.where(is_identity[..., None, None], eye, m).float()


def invert_3x3(matrices: Tensor) -> Tensor:
    """Inverses of matrices [..., 3, 3] by the adjugate over the determinant (a singular matrix gives
    inf / nan entries instead of an error, so nothing is read on the host)."""
    (a, b, c), (d, e, f), (g, h, i) = (row.unbind(-1) for row in matrices.unbind(-2))
    cofactors = [e * i - f * h, f * g - d * i, d * h - e * g]  # of the first row
    adjugate = [
        [cofactors[0], c * h - b * i, b * f - c * e],
        [cofactors[1], a * i - c * g, c * d - a * f],
        [cofactors[2], b * g - a * h, a * e - b * d],
    ]
    determinant = a * cofactors[0] + b * cofactors[1] + c * cofactors[2]
    return torch.stack([torch.stack(row, -1) for row in adjugate], -2) / determinant[..., None, None]


def warp_homography(images: Tensor, matrices: Tensor) -> Tensor:
    """Warp images [N, C, H, W] by matrices [N, 3, 3] (source -> destination pixel coordinates)."""
    n, _, height, width = images.shape
    if matrices.shape != (n, 3, 3):
        raise ValueError(f"expected matrices [{n}, 3, 3] for images {tuple(images.shape)}, got {tuple(matrices.shape)}")
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64, device=images.device),
        torch.arange(width, dtype=torch.float64, device=images.device),
        indexing="ij",
    )
    destination = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(1, -1, 3)
    inverse = invert_3x3(matrices.to(device=images.device, dtype=torch.float64)).float()
    source = destination.float() @ inverse.transpose(1, 2)  # [N, H*W, 3]
    source = source[..., :2] / source[..., 2:]
    # align_corners=True: -1 and +1 are the centres of the first and last pixels.
    grid = torch.stack([source[..., 0] * 2 / max(width - 1, 1) - 1, source[..., 1] * 2 / max(height - 1, 1) - 1], -1)
    grid = grid.view(n, height, width, 2).to(images.dtype)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def rgb_to_hsv(images: Tensor) -> Tensor:
    """RGB [..., 3, H, W] in [0, 1] -> HSV with hue in radians [0, 2 pi), saturation and value in [0, 1]."""
    r, g, b = images.unbind(-3)
    value, argmax = images.max(dim=-3)
    delta = value - images.min(dim=-3).values
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue6 = torch.where(
        argmax == 0,
        torch.remainder((g - b) / safe, 6.0),
        torch.where(argmax == 1, (b - r) / safe + 2.0, (r - g) / safe + 4.0),
    )
    hue = torch.where(delta > 0, hue6 * (TWO_PI / 6.0), torch.zeros_like(hue6))
    saturation = torch.where(
        value > 0, delta / torch.where(value > 0, value, torch.ones_like(value)), torch.zeros_like(value)
    )
    return torch.stack([hue, saturation, value], -3)


def hsv_to_rgb(images: Tensor) -> Tensor:
    """HSV [..., 3, H, W] (hue in radians, any real value, taken mod 2 pi) -> RGB in [0, 1]."""
    hue, saturation, value = images.unbind(-3)
    hue6 = torch.remainder(hue, TWO_PI) * (6.0 / TWO_PI)

    def channel(n: float) -> Tensor:
        k = torch.remainder(n + hue6, 6.0)
        return value - value * saturation * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)

    return torch.stack([channel(5.0), channel(3.0), channel(1.0)], -3)


def adjust_hue(images: Tensor, hue_rad: Tensor) -> Tensor:
    """Rotate the hue of RGB images [N, 3, H, W] by ``hue_rad`` [N] radians (mod 2 pi)."""
    hsv = rgb_to_hsv(images)
    hue = hsv[:, 0] + hue_rad.to(images.dtype).view(-1, 1, 1)
    return hsv_to_rgb(torch.stack([hue, hsv[:, 1], hsv[:, 2]], 1))


def grey_to_red(images: Tensor) -> Tensor:
    """Grey [N, 1, H, W] -> RGB [N, 3, H, W] with the grey level in the red channel only."""
    return torch.cat([images, torch.zeros_like(images), torch.zeros_like(images)], dim=1)
