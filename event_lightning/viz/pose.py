"""2D pose skeleton overlays on grey images or event frames (DHP19's 13 joints by default)."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from event_lightning.events.formats.dhp19_h5 import DHP19_JOINTS
from event_lightning.viz.events import EventColours, as_numpy, events_to_rgb

__all__ = ["DHP19_EDGES", "plot_pose_overlay"]

# Joint order (DHP19_JOINTS): 0 head, 1 shoulderR, 2 shoulderL, 3 elbowR, 4 elbowL, 5 hipR,
# 6 hipL, 7 handR, 8 handL, 9 kneeR, 10 kneeL, 11 footR, 12 footL. Same limbs as the synthetic
# stick figure's BONES (data/standins/dhp19.py, less its head disc), kept here so viz needs no data import.
DHP19_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 2), (1, 2),  # head-shoulderR, head-shoulderL, shoulderR-shoulderL
    (1, 3), (3, 7), (2, 4), (4, 8),  # shoulder-elbow-hand, right then left
    (1, 5), (2, 6), (5, 6),  # shoulder-hip on each side, hipR-hipL
    (5, 9), (9, 11), (6, 10), (10, 12),  # hip-knee-foot, right then left
)  # fmt: skip


def _background(image: Any) -> tuple[np.ndarray, str | None]:
    """``[H, W]`` grey, ``[H, W, 3]`` RGB or a ``[P, H, W]`` event count frame -> (image, cmap)."""
    image = as_numpy(image, "plot_pose_overlay")
    if image.ndim == 2:
        return image, "gray"
    if image.ndim == 3 and image.shape[-1] == 3 and image.shape[0] not in (1, 2):
        return image, None
    if image.ndim == 3 and image.shape[0] in (1, 2):
        return events_to_rgb(image, colours=EventColours(background=(0.0, 0.0, 0.0))), None
    raise ValueError(f"plot_pose_overlay: image must be [H, W], [H, W, 3] or [P, H, W] (P <= 2); found {image.shape}")


def _check_joints(joints: Any, name: str, n_joints: int) -> np.ndarray:
    joints = as_numpy(joints, name).astype(np.float64)
    if joints.ndim != 2 or joints.shape != (n_joints, 2):
        raise ValueError(f"plot_pose_overlay: {name} must be [{n_joints}, 2] (x, y) pixels, found {joints.shape}")
    return joints


def plot_pose_overlay(
    image: Any,
    joints: Any,
    *,
    edges: tuple[tuple[int, int], ...] = DHP19_EDGES,
    reference: Any = None,
    joint_names: tuple[str, ...] | None = DHP19_JOINTS,
    colour: str = "#00e000",
    reference_colour: str = "#ff00ff",
    label_joints: bool = False,
    inches: float = 4.0,
    title: str | None = None,
) -> Figure:
    """Draw a skeleton over an image.

    Args:
        image: ``[H, W]`` grey image, ``[H, W, 3]`` RGB, or a ``[P, H, W]`` event count frame
            (drawn ON/OFF coloured on black).
        joints: ``[J, 2]`` ``(x, y)`` = (column, row) pixels; NaN joints and their edges are skipped.
        edges: joint index pairs to connect (DHP19's 13-joint skeleton by default).
        reference: optional second ``[J, 2]`` pose (e.g. ground truth next to a prediction),
            drawn dashed in ``reference_colour``.
        joint_names: names used for the legend-free labels when ``label_joints``.

    Returns:
        A :class:`~matplotlib.figure.Figure` with one image axes in pixel coordinates.
    """
    background, cmap = _background(image)
    height, width = background.shape[:2]
    n_joints = max(max(e) for e in edges) + 1 if edges else len(as_numpy(joints, "joints"))
    joints = _check_joints(joints, "joints", n_joints)
    poses = [(joints, colour, "solid")]
    if reference is not None:
        poses.insert(0, (_check_joints(reference, "reference", n_joints), reference_colour, "dashed"))
    fig = Figure(figsize=(inches, inches * height / width + 0.3))
    ax = fig.add_subplot()
    ax.imshow(background, cmap=cmap, interpolation="nearest")
    edge_index = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    for pose, pose_colour, style in poses:
        # NaN endpoints make a segment invisible, so unlabelled joints need no masking here.
        ax.add_collection(LineCollection(pose[edge_index], colors=pose_colour, linewidths=2.0, linestyles=style))
        ax.scatter(pose[:, 0], pose[:, 1], s=18, c=pose_colour, edgecolors="black", linewidths=0.5, zorder=3)
    if label_joints and joint_names is not None:
        for name, (x, y) in zip(joint_names, joints, strict=False):
            if np.isfinite(x) and np.isfinite(y):
                ax.annotate(name, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=6, color=colour)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
