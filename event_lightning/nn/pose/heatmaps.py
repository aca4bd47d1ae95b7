"""Joint heatmaps: Gaussian targets rendered on the device from coordinates, and argmax decoding.

Coordinates are ``(x, y)`` = (column, row) pixels of the heatmap grid, ``NaN`` where a joint has
no label. The target follows the reference exactly: a one-hot at the truncated-integer pixel,
blurred with a normalised ``k x k`` Gaussian (``k = int(((sigma - 0.8) / 0.3 + 1) * 2 + 1)``, 11 for
sigma 2) over a reflect-padded image (torchvision ``gaussian_blur`` semantics), divided by its
own peak. A one-hot blurred by a separable kernel is the outer product of two blurred 1-D
one-hots, which is how it is computed here: no dense one-hot image is ever materialised.

A quirk of reflect padding kept for fidelity: a joint at pixel 1 or 2 from a border gets its
mirrored mass added to the border pixel, which then becomes the peak (the target's argmax is the
border pixel). ``border="zeros"`` pads with zeros instead, so the peak is always the joint pixel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from event_lightning.nn.pose.precision import at_least_float32

__all__ = ["argmax_decode", "gaussian_kernel_size", "render_heatmaps", "valid_joints"]


def gaussian_kernel_size(sigma: float) -> int:
    """The reference's kernel size for ``sigma``: ``int(((sigma - 0.8) / 0.3 + 1) * 2 + 1)``, made odd."""
    size = int(((sigma - 0.8) / 0.3 + 1) * 2 + 1)
    return size if size % 2 == 1 else size + 1


def _gaussian_kernel_1d(size: int, sigma: float, device: torch.device, dtype: torch.dtype) -> Tensor:
    half = (size - 1) * 0.5
    x = torch.linspace(-half, half, size, device=device, dtype=dtype)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def valid_joints(coords: Tensor, height: int, width: int) -> Tensor:
    """Mask ``[...]`` of joints whose truncated pixel lies inside a ``height x width`` grid.

    Args:
        coords: ``[..., 2]`` ``(x, y)`` pixels, NaN for unlabelled joints.
    """
    finite = torch.isfinite(coords).all(-1)
    pixel = torch.trunc(torch.nan_to_num(coords, nan=-1.0))
    inside = (pixel[..., 0] >= 0) & (pixel[..., 0] < width) & (pixel[..., 1] >= 0) & (pixel[..., 1] < height)
    return finite & inside


def _blurred_one_hot(index: Tensor, length: int, kernel: Tensor, border: str) -> Tensor:
    """``[N]`` integer positions -> ``[N, length]`` one-hots blurred with ``kernel``."""
    # a comparison, not F.one_hot: that checks the index range on the host
    positions = torch.arange(length, device=index.device)
    one_hot = (index.clamp(0, length - 1)[:, None] == positions).to(kernel.dtype).unsqueeze(1)
    pad = kernel.numel() // 2
    reflect = border == "reflect" and length > pad
    padded = F.pad(one_hot, (pad, pad), mode="reflect") if reflect else F.pad(one_hot, (pad, pad))
    return F.conv1d(padded, kernel.view(1, 1, -1)).squeeze(1)


def render_heatmaps(
    coords: Tensor,
    height: int,
    width: int,
    sigma: float = 2.0,
    dtype: torch.dtype = torch.float32,
    border: str = "reflect",
) -> Tensor:
    """Peak-normalised Gaussian heatmaps from joint coordinates, on ``coords.device``.

    Args:
        coords: ``[..., J, 2]`` ``(x, y)`` pixels of the heatmap grid; NaN (or outside the grid
            after truncation) gives an all-zero map.
        height, width: heatmap size in pixels.
        sigma: Gaussian standard deviation in pixels.
        border: ``"reflect"`` (torchvision's blur, the reference) or ``"zeros"``.

    Returns:
        ``[..., J, height, width]`` maps with peak 1 (at the truncated joint pixel, except for the
        reflect-padding quirk near borders described in the module docstring).
    """
    if border not in ("reflect", "zeros"):
        raise ValueError(f"render_heatmaps: border must be 'reflect' or 'zeros', found {border!r}")
    batch_shape = coords.shape[:-1]
    flat = coords.reshape(-1, 2)
    valid = valid_joints(flat, height, width)
    pixel = torch.trunc(torch.nan_to_num(flat, nan=0.0)).long()
    kernel = _gaussian_kernel_1d(gaussian_kernel_size(sigma), sigma, coords.device, dtype)
    profile_x = _blurred_one_hot(pixel[:, 0], width, kernel, border)
    profile_y = _blurred_one_hot(pixel[:, 1], height, kernel, border)
    profile_x = profile_x / profile_x.amax(-1, keepdim=True)
    profile_y = profile_y / profile_y.amax(-1, keepdim=True)
    maps = profile_y.unsqueeze(-1) * profile_x.unsqueeze(-2) * valid.to(dtype).view(-1, 1, 1)
    return maps.reshape(*batch_shape, height, width)


def argmax_decode(heatmaps: Tensor) -> Tensor:
    """Per-map argmax: ``[..., H, W]`` -> ``[..., 2]`` ``(x, y)`` integer-valued float pixels.

    The first maximum in row-major order wins (x = index mod W, y = index div W), no sub-pixel
    refinement, as in the reference. Maps are compared in float32 (at least).
    """
    height, width = heatmaps.shape[-2:]
    index = heatmaps.flatten(-2).to(at_least_float32(heatmaps.dtype)).argmax(-1)
    return torch.stack([index % width, torch.div(index, width, rounding_mode="floor")], -1).to(
        torch.get_default_dtype()
    )
