"""DHP19 camera geometry: projection of 3D joints to crop pixels, and two-view triangulation.

Conventions of the DHP19 files (hybrid_pose spec §3):

* ``P`` is a 3x4 matrix mapping Vicon millimetres to homogeneous pixels ``(u, v', w)``; the
  image row is flipped: ``u = u'/w`` (column), ``v = H_sensor - v'/w`` (row), ``H_sensor = 260``.
* camera id -> P file: ``cam0 -> P4.npy``, ``cam1 -> P1.npy``, ``cam2 -> P3.npy``,
  ``cam3 -> P2.npy``; the camera centre of P file ``k`` is ``camera_positions.npy[k - 1]``.
* crop pixels = sensor pixels minus the crop offset ``(34, 2)`` (columns, rows).

Triangulation casts a ray per view from the camera centre through ``pinv(P) @ (u, v', 1)``
(dehomogenised) and returns the least-squares intersection of the rays, i.e. the point
minimising the summed squared distances, from ``sum_i (I - d_i d_i^T) x = sum_i (I - d_i d_i^T) c_i``.
Both the pseudo-inverse (``P^T (P P^T)^-1`` of the full-rank 3x4 ``P``) and the 3x3 systems are
solved without the error checks that read a status flag back to the host (``solve_ex``), so
triangulating in a validation step never waits on the GPU; failed points come out NaN.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "CAMERA_TO_P_INDEX",
    "CROP_OFFSET",
    "SENSOR_HEIGHT",
    "crop_to_image_plane",
    "project_to_crop",
    "triangulate",
]

CAMERA_TO_P_INDEX = {0: 4, 1: 1, 2: 3, 3: 2}
"""DHP19 camera id -> the number ``k`` of its ``P{k}.npy`` (and row ``k - 1`` of camera_positions)."""
SENSOR_HEIGHT = 260
CROP_OFFSET = (34, 2)


def project_to_crop(
    points_mm: Tensor,
    projection: Tensor,
    sensor_height: int = SENSOR_HEIGHT,
    crop_offset: tuple[int, int] = CROP_OFFSET,
) -> Tensor:
    """Project 3D points into crop pixels (no truncation).

    Args:
        points_mm: ``[..., 3]`` points in mm (NaN propagates).
        projection: ``[3, 4]`` (or broadcastable ``[..., 3, 4]``) DHP19 projection matrix.

    Returns:
        ``[..., 2]`` ``(x, y)`` crop pixels: ``x = u - crop_x``, ``y = H - v' - crop_y``.
    """
    homogeneous = torch.cat([points_mm, torch.ones_like(points_mm[..., :1])], -1)
    uvw = (projection @ homogeneous.unsqueeze(-1)).squeeze(-1)
    u = uvw[..., 0] / uvw[..., 2]
    v = sensor_height - uvw[..., 1] / uvw[..., 2]
    return torch.stack([u - crop_offset[0], v - crop_offset[1]], -1)


def crop_to_image_plane(
    crop_xy: Tensor, sensor_height: int = SENSOR_HEIGHT, crop_offset: tuple[int, int] = CROP_OFFSET
) -> Tensor:
    """Inverse of the pixel part of :func:`project_to_crop`: crop ``(x, y)`` -> ``P``'s ``(u, v'/w)``."""
    u = crop_xy[..., 0] + crop_offset[0]
    v = sensor_height - (crop_xy[..., 1] + crop_offset[1])
    return torch.stack([u, v], -1)


def _pseudo_inverse(projections: Tensor) -> Tensor:
    """``pinv(P) = P^T (P P^T)^-1`` of full-row-rank ``[V, 3, 4]`` matrices -> ``[V, 4, 3]``."""
    gram = projections @ projections.transpose(-1, -2)
    return torch.linalg.solve_ex(gram, projections, check_errors=False)[0].transpose(-1, -2)


def triangulate(
    crop_xy: Tensor,
    projections: Tensor,
    centres: Tensor,
    sensor_height: int = SENSOR_HEIGHT,
    crop_offset: tuple[int, int] = CROP_OFFSET,
) -> Tensor:
    """Least-squares intersection of the back-projected rays of two (or more) views.

    Args:
        crop_xy: ``[V, ..., 2]`` crop pixels of the same points seen by ``V >= 2`` views.
        projections: ``[V, 3, 4]`` projection matrices of those views.
        centres: ``[V, 3]`` camera centres in mm.

    Returns:
        ``[..., 3]`` points in mm; NaN where any view's pixel is NaN.
    """
    if crop_xy.shape[0] != projections.shape[0] or projections.shape[0] != centres.shape[0] or crop_xy.shape[0] < 2:
        raise ValueError(
            f"triangulate needs V >= 2 matching views; found pixels {tuple(crop_xy.shape)}, "
            f"projections {tuple(projections.shape)}, centres {tuple(centres.shape)}"
        )
    dtype = torch.float64
    views = crop_xy.shape[0]
    batch_shape = crop_xy.shape[1:-1]
    plane = crop_to_image_plane(crop_xy.to(dtype), sensor_height, crop_offset).reshape(views, -1, 2)
    homogeneous = torch.cat([plane, torch.ones_like(plane[..., :1])], -1)
    back = (_pseudo_inverse(projections.to(dtype)).unsqueeze(1) @ homogeneous.unsqueeze(-1)).squeeze(-1)
    on_ray = back[..., :3] / back[..., 3:]
    centre = centres.to(dtype).unsqueeze(1)
    direction = on_ray - centre
    direction = direction / torch.linalg.vector_norm(direction, dim=-1, keepdim=True)
    eye = torch.eye(3, dtype=dtype, device=crop_xy.device)
    projector = eye - direction.unsqueeze(-1) * direction.unsqueeze(-2)
    lhs = projector.sum(0)
    rhs = (projector @ centre.expand_as(direction).unsqueeze(-1)).squeeze(-1).sum(0)
    finite = torch.isfinite(lhs).all((-1, -2)) & torch.isfinite(rhs).all(-1)
    safe_lhs = torch.where(finite[:, None, None], lhs, eye)
    safe_rhs = torch.where(finite[:, None], rhs, torch.zeros_like(rhs))
    points = torch.linalg.solve_ex(safe_lhs, safe_rhs.unsqueeze(-1), check_errors=False)[0].squeeze(-1)
    points = torch.where(finite[:, None], points, torch.full_like(points, float("nan")))
    return points.reshape(*batch_shape, 3)
