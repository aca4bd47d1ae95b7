"""A synthetic DHP19 stand-in: a 13-joint stick figure seen by calibrated DAVIS346 cameras.

Per recording, a stick figure (DHP19 joint order, Vicon-like millimetres, z up) moves in 3D:
it sways, turns slowly, swings and raises its arms and bends its legs, with subject-specific
size and recording-specific frequencies. Four cameras stand around it like DHP19's (a 3x4
``P`` per camera that maps mm to ``(u, 260 - row, 1)``, centres in ``camera_positions.npy``);
the chosen cameras render the figure as bright capsules on a darker background at 346x260, and
:func:`~event_lightning.events.simulate.simulate_events` turns the intensity frames into events.
Everything is written in the real on-disk layout (``<stem>_events.h5``, ``<stem>_label.h5``,
``P1..P4.npy``, ``camera_positions.npy``) and read back by the real reader
(:class:`~event_lightning.data.datasets.dhp19.SyntheticDHP19DataModule` writes it and trains on it).

The figure is rendered and simulated in chunks of frames (memory stays bounded at any recording
length); each chunk starts its pixels' reference brightness afresh at its first frame, which drops
at most one threshold of pending change per pixel at a chunk boundary (every ``chunk_frames`` frames).

A recording lasts :data:`DEFAULT_DURATION_MS` by default, an assumption: about ten repetitions of
a movement (the figure's movements have periods of 0.7-1.7 s). The real recordings' durations and
event rates are not in the sources this project used (docs/datasets.md says what is assumed); tests
and CPU configs pass a shorter ``duration_ms``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from event_lightning.data.standins.folders import ensure_standin
from event_lightning.events.core import EVENT_DTYPE
from event_lightning.events.formats.dhp19_h5 import (
    DHP19_LABEL_PERIOD_US,
    DHP19_SENSOR_SIZE,
    write_dhp19_events,
    write_dhp19_labels,
    write_projection_matrices,
)
from event_lightning.events.simulate import SimulatorConfig, simulate_events
from event_lightning.metrics.triangulation import CAMERA_TO_P_INDEX

__all__ = [
    "BONES",
    "CNN_FRAME_EVENTS",
    "DEFAULT_DURATION_MS",
    "SyntheticDHP19Config",
    "dhp19_like_cameras",
    "ensure_synthetic_dhp19",
    "render_stick_figure",
    "stick_figure_poses",
    "synthetic_dhp19_complete",
    "write_synthetic_dhp19",
]

BONES = (
    (0, 1), (0, 2), (1, 2), (1, 3), (3, 7), (2, 4), (4, 8),
    (1, 5), (2, 6), (5, 6), (5, 9), (9, 11), (6, 10), (10, 12), (0, 0),
)  # fmt: skip
"""Capsules drawn between DHP19 joints (``(0, 0)`` is the head, a disc)."""
_BONE_RADIUS_SCALE = np.array([0.8, 0.8, 1.0, 0.9, 0.8, 0.9, 0.8, 1.4, 1.4, 1.3, 1.1, 1.0, 1.1, 1.0, 1.9])
_BONE_BRIGHTNESS = np.array([0.9, 0.9, 0.8, 1.0, 0.9, 1.0, 0.9, 0.8, 0.8, 0.75, 0.85, 0.8, 0.85, 0.8, 1.0])
_GENERATOR_VERSION = "1"
MARKER = "synthetic_dhp19.json"
SYNTHETIC_FOCAL_PX = 300.0
DEFAULT_DURATION_MS = 10_000
CNN_FRAME_EVENTS = 7500
"""Events of one camera in a constant-count frame: DHP19's own frame generator calls it the average
count per camera and frame, and the hybrid reference's CNN reads such a frame every 100 ms."""


@dataclass(frozen=True)
class SyntheticDHP19Config:
    """What :func:`write_synthetic_dhp19` writes.

    Attributes:
        subjects: subject numbers (file names ``S<n>_session1_mov<m>``; 1-12 train, 13-17 test).
        movements_per_subject: recordings per subject.
        duration_ms: length of each recording (labels every 10 ms); default
            :data:`DEFAULT_DURATION_MS`.
        frame_interval_us: rendering period of the intensity frames.
        cameras: cameras that get events (all four get projection matrices).
        seed: seed of motions and simulator.
        limb_radius_mm: capsule radius of a limb.
        background, foreground: intensities in [0, 1].
        contrast_threshold: ON/OFF threshold of the simulator (log units).
        chunk_frames: frames per simulator call.
    """

    subjects: tuple[int, ...] = (1, 2, 13)
    movements_per_subject: int = 1
    duration_ms: int = DEFAULT_DURATION_MS
    frame_interval_us: int = 5000
    cameras: tuple[int, ...] = (2, 3)
    seed: int = 0
    limb_radius_mm: float = 45.0
    background: float = 0.3
    foreground: float = 0.7
    contrast_threshold: float = 0.25
    chunk_frames: int = 80

    def __post_init__(self) -> None:
        if self.duration_ms < 200 or self.duration_ms % 10:
            raise ValueError(
                f"SyntheticDHP19Config.duration_ms must be a multiple of 10 >= 200; found {self.duration_ms}"
            )
        if any(c not in CAMERA_TO_P_INDEX for c in self.cameras):
            raise ValueError(f"SyntheticDHP19Config.cameras must be DHP19 cameras 0-3; found {self.cameras}")
        if not 0 <= self.background < self.foreground <= 1:
            raise ValueError("SyntheticDHP19Config: need 0 <= background < foreground <= 1")

    def key(self) -> str:
        """Hash of every field (and the generator version): the output folder's name."""
        payload = json.dumps({"config": asdict(self), "version": _GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def stick_figure_poses(times_s: np.ndarray, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """Joint positions ``[F, 13, 3]`` (mm, z up, DHP19 order) of one random movement at ``times_s``."""
    t = np.asarray(times_s, dtype=np.float64)[:, None]
    freq = rng.uniform(0.6, 1.4, size=6)
    phase = rng.uniform(0, 2 * np.pi, size=6)
    amp = rng.uniform(0.3, 1.0, size=6)

    def wave(k: int) -> np.ndarray:
        return np.sin(2 * np.pi * freq[k] * t + phase[k])

    heading = rng.uniform(0, 2 * np.pi) + 0.6 * amp[5] * wave(5)
    forward = np.concatenate([np.cos(heading), np.sin(heading), np.zeros_like(t)], 1)
    left = np.concatenate([-np.sin(heading), np.cos(heading), np.zeros_like(t)], 1)
    up = np.broadcast_to(np.array([0.0, 0.0, 1.0]), forward.shape)
    squat = 0.5 * (1 + wave(4)) * amp[4] * 0.6
    pelvis = np.concatenate(
        [120 * amp[0] * wave(0), 120 * amp[0] * np.cos(2 * np.pi * freq[0] * t), 950 - 200 * squat], 1
    )

    def body(f: float | np.ndarray, l: float | np.ndarray, u: float | np.ndarray) -> np.ndarray:
        return scale * (f * forward + l * left + u * up)

    joints = np.zeros((len(t), 13, 3))
    hip = {5: -1.0, 6: 1.0}
    shoulder = {1: -1.0, 2: 1.0}
    for j, side in shoulder.items():
        joints[:, j] = pelvis + body(0, 180 * side, 500)
    joints[:, 0] = pelvis + body(0, 0, 760)
    for j, side in hip.items():
        joints[:, j] = pelvis + body(0, 100 * side, 0)
    for (shoulder_j, elbow_j, hand_j), side, k in (((1, 3, 7), -1.0, 1), ((2, 4, 8), 1.0, 2)):
        swing = 0.9 * amp[k] * wave(k)  # forward/backward
        raise_ = 0.5 * np.pi * amp[3] * 0.5 * (1 + side * wave(3))  # abduction
        upper = body(np.sin(swing) * np.cos(raise_), side * np.sin(raise_), -np.cos(swing) * np.cos(raise_))
        joints[:, elbow_j] = joints[:, shoulder_j] + 300 * _unit(upper) * scale
        bend = swing + 0.6 + 0.4 * wave(k)
        lower = body(np.sin(bend) * np.cos(raise_), side * np.sin(raise_), -np.cos(bend) * np.cos(raise_))
        joints[:, hand_j] = joints[:, elbow_j] + 280 * _unit(lower) * scale
    for (hip_j, knee_j, foot_j), sign in (((5, 9, 11), 1.0), ((6, 10, 12), -1.0)):
        thigh_angle = sign * 0.5 * amp[0] * wave(0) + 0.9 * squat
        thigh = body(np.sin(thigh_angle), 0, -np.cos(thigh_angle))
        joints[:, knee_j] = joints[:, hip_j] + 450 * _unit(thigh) * scale
        shin_angle = thigh_angle - 1.8 * squat - 0.3 * amp[0] * (1 + sign * wave(0))
        shin = body(np.sin(shin_angle), 0, -np.cos(shin_angle))
        joints[:, foot_j] = joints[:, knee_j] + 430 * _unit(shin) * scale
    return joints


def _look_at(centre: np.ndarray, target: np.ndarray, focal: float) -> np.ndarray:
    forward = _unit(target - centre)
    right = _unit(np.cross(forward, [0.0, 0.0, 1.0]))
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])
    intrinsics = np.array([[focal, 0, 173.0], [0, focal, 130.0], [0, 0, 1.0]])
    # DHP19's P gives v' = 260 - row: flip the row axis after the pinhole.
    flip = np.array([[1.0, 0, 0], [0, -1.0, float(DHP19_SENSOR_SIZE.height)], [0, 0, 1.0]])
    return flip @ intrinsics @ np.hstack([rotation, -rotation @ centre[:, None]])


def dhp19_like_cameras(focal: float = 300.0) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Four cameras around the origin: ``({P index k: P [3, 4]}, camera_positions [4, 3] mm)``."""
    target = np.array([0.0, 0.0, 900.0])
    positions = np.array(
        [
            [3600.0, 500.0, 1300.0],  # P1 (cam1)
            [2300.0, 2900.0, 1200.0],  # P2 (cam3)
            [-2400.0, 2800.0, 1250.0],  # P3 (cam2)
            [-3500.0, -600.0, 1350.0],  # P4 (cam0)
        ]
    )
    return {k + 1: _look_at(positions[k], target, focal) for k in range(4)}, positions


def render_stick_figure(
    poses_mm: np.ndarray,
    projection: np.ndarray,
    focal_px: float = 300.0,
    radius_mm: float = 45.0,
    background: float = 0.3,
    foreground: float = 0.7,
) -> np.ndarray:
    """Intensity frames ``[F, 260, 346]`` in [0, 1] of the figure seen through ``projection``.

    Capsules between joints (radius ``radius_mm`` seen at the bone's mean depth with focal length
    ``focal_px``), anti-aliased over one pixel; limbs differ slightly in brightness so that
    crossing limbs still show edges. Only the figure's bounding box is computed per frame group.
    """
    height, width = DHP19_SENSOR_SIZE.height, DHP19_SENSOR_SIZE.width
    homogeneous = np.concatenate([poses_mm, np.ones_like(poses_mm[..., :1])], -1)
    uvw = homogeneous @ projection.T
    col = uvw[..., 0] / uvw[..., 2]
    row = height - uvw[..., 1] / uvw[..., 2]
    depth = uvw[..., 2]  # P's last row is the camera's unit optical axis: w is the depth in mm
    bones = np.array(BONES)
    a = np.stack([col[:, bones[:, 0]], row[:, bones[:, 0]]], -1)  # [F, B, 2]
    b = np.stack([col[:, bones[:, 1]], row[:, bones[:, 1]]], -1)
    mean_depth = 0.5 * (depth[:, bones[:, 0]] + depth[:, bones[:, 1]])
    radius = radius_mm * _BONE_RADIUS_SCALE * focal_px / np.maximum(mean_depth, 1.0)  # [F, B] px
    frames = np.full((len(poses_mm), height, width), background, dtype=np.float32)
    group = 4  # frames per vectorised step: bounded memory
    for start in range(0, len(poses_mm), group):
        sl = slice(start, start + group)
        margin = float(radius[sl].max()) + 2
        points = np.concatenate([a[sl], b[sl]], 1).reshape(-1, 2)
        x0, y0 = np.floor(np.clip(points.min(0) - margin, 0, [width, height])).astype(int)
        x1, y1 = np.ceil(np.clip(points.max(0) + margin, 0, [width, height])).astype(int)
        if x1 <= x0 or y1 <= y0:
            continue
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        ax, ay = (a[sl][..., k, None, None].astype(np.float32) for k in (0, 1))  # [f, B, 1, 1]
        sx, sy = ((b[sl] - a[sl])[..., k, None, None].astype(np.float32) for k in (0, 1))
        rx, ry = xs - ax, ys - ay  # [f, B, h, w]
        along = np.clip((rx * sx + ry * sy) / np.maximum(sx * sx + sy * sy, 1e-9), 0.0, 1.0)
        dist = np.sqrt((rx - along * sx) ** 2 + (ry - along * sy) ** 2)
        cover = np.clip(radius[sl, :, None, None].astype(np.float32) - dist + 0.5, 0.0, 1.0)
        level = (cover * _BONE_BRIGHTNESS.astype(np.float32)[None, :, None, None]).max(1)
        frames[sl, y0:y1, x0:x1] = background + (foreground - background) * level
    return frames


def _camera_events(
    poses_mm: np.ndarray, times_us: np.ndarray, projection: np.ndarray, config: SyntheticDHP19Config, seed: int
) -> np.ndarray:
    """Events of one camera watching the figure at ``poses_mm`` ``[F, 13, 3]`` (frame times ``times_us``)."""
    sim = SimulatorConfig(
        pos_threshold=config.contrast_threshold, neg_threshold=config.contrast_threshold, threshold_sigma=0.02
    )
    chunks = []
    for start in range(0, len(poses_mm) - 1, config.chunk_frames):
        stop = min(start + config.chunk_frames + 1, len(poses_mm))
        frames = render_stick_figure(
            poses_mm[start:stop],
            projection,
            SYNTHETIC_FOCAL_PX,
            config.limb_radius_mm,
            config.background,
            config.foreground,
        )
        # The same seed in every chunk: each pixel keeps its threshold mismatch across chunks.
        chunks.append(simulate_events(frames, times_us[start:stop], sim, np.random.default_rng(seed)))
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=EVENT_DTYPE)


def synthetic_dhp19_complete(folder: str | Path) -> bool:
    """Whether ``folder`` holds a whole stand-in (:func:`write_synthetic_dhp19` writes its marker last)."""
    return (Path(folder) / MARKER).is_file()


def ensure_synthetic_dhp19(folder: Path, config: SyntheticDHP19Config) -> Path:
    """Write the stand-in of ``config`` into ``folder`` once (atomically, under a lock) unless it is there.

    ``folder`` should be named by ``config.key()``; see :mod:`event_lightning.data.standins.folders`.
    """
    return ensure_standin(
        folder, lambda staging: write_synthetic_dhp19(staging, config), synthetic_dhp19_complete, asdict(config)
    )


def write_synthetic_dhp19(root: str | Path, config: SyntheticDHP19Config | None = None) -> list[str]:
    """Write the stand-in under ``root`` in the DHP19 h5 layout; returns the recording stems."""
    config = config or SyntheticDHP19Config()
    root = Path(root)
    projections, positions = dhp19_like_cameras(SYNTHETIC_FOCAL_PX)
    write_projection_matrices(root, projections, positions)
    frame_times = np.arange(0, config.duration_ms * 1000 + 1, config.frame_interval_us, dtype=np.int64)
    label_times = (np.arange(config.duration_ms // 10) + 1) * DHP19_LABEL_PERIOD_US
    stems = []
    for subject in config.subjects:
        subject_rng = np.random.default_rng([config.seed, subject])
        scale = subject_rng.uniform(0.9, 1.1)
        for movement in range(1, config.movements_per_subject + 1):
            stem = f"S{subject}_session1_mov{movement}"
            motion_seed = [config.seed, subject, movement]  # one motion: same rng for frames and labels
            frame_poses = stick_figure_poses(frame_times / 1e6, np.random.default_rng(motion_seed), scale)
            cameras = {
                cam: _camera_events(
                    frame_poses,
                    frame_times,
                    projections[CAMERA_TO_P_INDEX[cam]],
                    config,
                    config.seed * 1000 + subject * 10 + cam,
                )
                for cam in config.cameras
            }
            write_dhp19_events(root / f"{stem}_events.h5", cameras, n_ms=config.duration_ms + 1)
            labels = stick_figure_poses(label_times / 1e6, np.random.default_rng(motion_seed), scale)
            write_dhp19_labels(root / f"{stem}_label.h5", labels.transpose(0, 2, 1), label_times)
            stems.append(stem)
    (root / MARKER).write_text(json.dumps(asdict(config), indent=2))
    return stems
