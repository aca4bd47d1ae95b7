"""Synthetic DVSGesture stand-in: bright blobs moving in gesture-like patterns, seen by a DVS.

Each class is a motion pattern of one or two Gaussian blobs ("hands") on a 128x128 sensor,
loosely after the DVSGesture classes: clapping (two blobs meeting), right / left hand wave
(horizontal oscillation on one side), right / left arm clockwise / counter-clockwise (circles on one
side), arm roll (two blobs circling the centre), air drums (two blobs alternating up and down), air
guitar (diagonal strumming) and, optionally, "other" (a random walk, label 10, which the DataModule
drops like the real "Other gestures"). Users differ by speed, amplitude, blob size and phase.
Lighting conditions differ by background brightness, contrast and background-activity rate, so the
lighting variant has something to find. Intensity frames become events through
:func:`event_lightning.events.simulate.simulate_events`.

A recording lasts :data:`REAL_MEAN_DURATION_US` by default, the mean of the real gestures, at the
real event rate (see docs/datasets.md, "The offline stand-ins", for both side by side); tests and
CPU benchmarks pass a shorter ``duration_us``.

Files are written in tonic's DVSGesture layout (``<root>/DVSGesture/ibmGestureTrain/user01_led/3.npy``,
see :mod:`event_lightning.events.formats.dvsgesture_npy`) and read back by the real reader. A marker
``<root>/DVSGesture/.synthetic_complete`` holds the config hash: generation is skipped when it
matches, and a folder without the marker (a real copy) is never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from event_lightning.data.standins.folders import ensure_standin, standin_folder
from event_lightning.events.formats.dvsgesture_npy import (
    DVSGESTURE_OTHER_LABEL,
    DVSGESTURE_SENSOR_SIZE,
    dvsgesture_split_dir,
    write_dvsgesture_npy,
)
from event_lightning.events.simulate import SimulatorConfig, simulate_events

__all__ = [
    "LIGHTING_STYLES",
    "REAL_MEAN_DURATION_US",
    "REAL_MEAN_EVENTS",
    "SyntheticGesturesConfig",
    "ensure_synthetic_gestures",
    "generate_synthetic_gestures",
    "render_gesture",
    "synthetic_gestures_complete",
    "synthetic_gestures_folder",
]

GENERATOR_VERSION = 1
MARKER = ".synthetic_complete"
MAX_CLASSES = 10
# The real gestures (the 1176 training recordings of the spikingjelly / tfds cut of tonic's files): 7.60e9 µs
# and 4.26e8 events in all, i.e. 6.46 s and 362k events (56k events/s) per gesture on average.
REAL_MEAN_DURATION_US = 6_464_000
REAL_MEAN_EVENTS = 362_000

# Lighting -> (background intensity, blob intensity, background-activity rate in Hz per pixel).
LIGHTING_STYLES: dict[str, tuple[float, float, float]] = {
    "fluorescent": (0.25, 0.75, 2.0),
    "led": (0.15, 0.95, 0.2),
    "lab": (0.35, 0.65, 0.8),
    "natural": (0.45, 0.9, 5.0),
}


@dataclass(frozen=True)
class SyntheticGesturesConfig:
    """What :func:`generate_synthetic_gestures` writes.

    Attributes:
        n_classes: gesture classes 0..n_classes-1 (at most 10).
        include_other: also write label 10 ("other": a random walk) per user and lighting.
        train_users / test_users: user numbers (DVSGesture: 1-23 train, 24-29 test).
        lightings: lighting tokens, keys of :data:`LIGHTING_STYLES`.
        duration_us: recording length, µs (default: the real gestures' mean, 6.46 s);
            frame_interval_us: rendering step, µs.
        seed: every random draw derives from it.
        pos_threshold / neg_threshold / threshold_sigma: the simulated pixels (log units).
    """

    n_classes: int = 10
    include_other: bool = True
    train_users: list[int] = field(default_factory=lambda: [1, 2, 3])
    test_users: list[int] = field(default_factory=lambda: [24])
    lightings: list[str] = field(default_factory=lambda: ["fluorescent", "led", "lab", "natural"])
    duration_us: int = REAL_MEAN_DURATION_US
    frame_interval_us: int = 4_000
    seed: int = 0
    pos_threshold: float = 0.25
    neg_threshold: float = 0.25
    threshold_sigma: float = 0.03

    def __post_init__(self) -> None:
        if not 1 <= self.n_classes <= MAX_CLASSES:
            raise ValueError(f"SyntheticGesturesConfig.n_classes must be in 1..{MAX_CLASSES}, found {self.n_classes}")
        unknown = [light for light in self.lightings if light not in LIGHTING_STYLES]
        if unknown:
            raise ValueError(
                f"SyntheticGesturesConfig.lightings: unknown {unknown}; choose from {sorted(LIGHTING_STYLES)}"
            )
        if set(self.train_users) & set(self.test_users):
            raise ValueError("SyntheticGesturesConfig: train_users and test_users must not overlap")
        if self.duration_us < 2 * self.frame_interval_us or self.frame_interval_us <= 0:
            raise ValueError("SyntheticGesturesConfig: need duration_us >= 2 * frame_interval_us > 0")

    def config_hash(self) -> str:
        payload = json.dumps({"version": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _trajectories(label: int, phase: np.ndarray, style: dict[str, float], rng: np.random.Generator) -> np.ndarray:
    """Blob centres ``[2, N, 2]`` (two blobs, x/y in pixels) for ``phase`` ``[N]`` in radians."""
    c, a = 64.0, style["amplitude"]
    cos, sin = np.cos(phase), np.sin(phase)
    side = {1: 1, 2: -1, 3: 1, 4: 1, 5: -1, 6: -1}.get(label, 0)
    arm = c + side * 30.0
    parked = np.stack([np.full_like(phase, c - side * 40.0), np.full_like(phase, 110.0)], axis=1)
    if label == 0:  # clapping: two hands meet in the middle
        gap = 6 + a * (1 + cos)
        return np.stack(
            [np.stack([c - gap, np.full_like(phase, 60.0)], 1), np.stack([c + gap, np.full_like(phase, 60.0)], 1)]
        )
    if label in (1, 2):  # hand wave on one side
        return np.stack([np.stack([arm + a * sin, np.full_like(phase, 40.0)], 1), parked])
    if label in (3, 4, 5, 6):  # arm circles, clockwise (3, 5) or counter-clockwise (4, 6) on screen
        direction = 1.0 if label in (3, 5) else -1.0
        return np.stack([np.stack([arm + a * cos, c + direction * a * sin], 1), parked])
    if label == 7:  # arm roll: two blobs circling the centre, opposite each other
        r = 0.5 * a
        return np.stack([np.stack([c + r * cos, c + r * sin], 1), np.stack([c - r * cos, c - r * sin], 1)])
    if label == 8:  # air drums: alternating vertical strokes
        return np.stack(
            [
                np.stack([np.full_like(phase, c - 25), 70 + a * sin], 1),
                np.stack([np.full_like(phase, c + 25), 70 - a * sin], 1),
            ]
        )
    if label == 9:  # air guitar: diagonal strumming, one fretting hand still
        return np.stack(
            [
                np.stack([c + 10 + 0.6 * a * sin, 80 + 0.6 * a * sin], 1),
                np.stack([np.full_like(phase, c - 35), np.full_like(phase, 50.0)], 1),
            ]
        )
    # other: a smooth random walk
    steps = rng.normal(0, 1.5, size=(2, len(phase), 2)).cumsum(axis=1)
    return np.clip(c + steps, 10, 118)


def render_gesture(
    label: int, n_frames: int, frame_interval_us: int, lighting: str, style: dict[str, float], rng: np.random.Generator
) -> np.ndarray:
    """Intensity frames ``[n_frames, 128, 128]`` in [0, 1] of one gesture."""
    t_s = np.arange(n_frames) * frame_interval_us * 1e-6
    phase = 2 * np.pi * style["frequency_hz"] * t_s + style["phase"]
    centres = _trajectories(label, phase, style, rng)  # [2, N, 2]
    background, foreground, _ = LIGHTING_STYLES[lighting]
    grid = np.arange(DVSGESTURE_SENSOR_SIZE.width, dtype=np.float32)
    inv = np.float32(-0.5 / style["radius"] ** 2)
    # The Gaussian is separable in x and y: per blob [N, W] and [N, H] profiles.
    gx = np.exp(inv * (grid[None, None, :] - centres[:, :, 0:1].astype(np.float32)) ** 2)  # [2, N, W]
    gy = np.exp(inv * (grid[None, None, :] - centres[:, :, 1:2].astype(np.float32)) ** 2)  # [2, N, H]
    frames = np.empty((n_frames, DVSGESTURE_SENSOR_SIZE.height, DVSGESTURE_SENSOR_SIZE.width), dtype=np.float32)
    chunk = 64  # frames per step: the products stay in cache (a 6 s recording is 1600 frames)
    for start in range(0, n_frames, chunk):
        sl = slice(start, start + chunk)
        ink = np.max(gy[:, sl, :, None] * gx[:, sl, None, :], axis=0)  # the brighter blob wins
        frames[sl] = background + (foreground - background) * ink
    return frames


def _user_style(user: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng([seed, 7919, user])
    return {
        "frequency_hz": float(rng.uniform(1.6, 2.4)),
        "amplitude": float(rng.uniform(16, 24)),
        "radius": float(rng.uniform(5, 7)),
        "phase": float(rng.uniform(0, 2 * np.pi)),
    }


def _write_split(root: Path, config: SyntheticGesturesConfig, train: bool) -> int:
    users = config.train_users if train else config.test_users
    labels = list(range(config.n_classes)) + ([DVSGESTURE_OTHER_LABEL] if config.include_other else [])
    n_frames = config.duration_us // config.frame_interval_us + 1
    times = np.arange(n_frames, dtype=np.int64) * config.frame_interval_us
    written = 0
    for user in users:
        style = _user_style(user, config.seed)
        for li, lighting in enumerate(config.lightings):
            for label in labels:
                rng = np.random.default_rng([config.seed, user, li, label])
                frames = render_gesture(label, n_frames, config.frame_interval_us, lighting, style, rng)
                sim = SimulatorConfig(
                    pos_threshold=config.pos_threshold,
                    neg_threshold=config.neg_threshold,
                    threshold_sigma=config.threshold_sigma,
                    noise_rate_hz=LIGHTING_STYLES[lighting][2],
                )
                events = simulate_events(frames, times, sim, rng)
                path = dvsgesture_split_dir(root, train) / f"user{user:02d}_{lighting}" / f"{label}.npy"
                write_dvsgesture_npy(path, events)
                written += 1
    return written


def synthetic_gestures_complete(root: str | os.PathLike, config: SyntheticGesturesConfig) -> bool:
    """Whether ``root`` holds the whole synthetic set of ``config`` (its completion marker); reads only."""
    try:
        record = json.loads((Path(root) / "DVSGesture" / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("hash") == config.config_hash()


def synthetic_gestures_folder(root: str | os.PathLike, config: SyntheticGesturesConfig) -> Path:
    """Where a DataModule reads the stand-in of ``config`` from (``root`` or ``root/synthetic-dvsgesture-<key>``)."""
    return standin_folder(root, "dvsgesture", config.config_hash(), lambda f: synthetic_gestures_complete(f, config))


def ensure_synthetic_gestures(folder: Path, config: SyntheticGesturesConfig) -> Path:
    """Write the stand-in into ``folder`` (from :func:`synthetic_gestures_folder`) unless it is there."""
    return ensure_standin(
        folder,
        lambda staging: generate_synthetic_gestures(staging, config),
        lambda f: synthetic_gestures_complete(f, config),
        asdict(config),
    )


def generate_synthetic_gestures(
    root: str | os.PathLike, config: SyntheticGesturesConfig | None = None, *, force: bool = False
) -> bool:
    """Write the synthetic set under ``<root>/DVSGesture`` unless the same config is already there.

    Returns:
        True when files were (re)generated, False when the existing ones were kept.

    Raises:
        FileExistsError: ``<root>/DVSGesture`` holds split folders this generator did not write.
    """
    config = config or SyntheticGesturesConfig()
    base = Path(root) / "DVSGesture"
    marker = base / MARKER
    digest = config.config_hash()
    if not force and synthetic_gestures_complete(root, config):
        return False
    splits = [dvsgesture_split_dir(root, train) for train in (True, False)]
    existing = [s for s in splits if s.exists()]
    if existing and not marker.is_file() and not (base / ".synthetic_generating").is_file():
        raise FileExistsError(
            f"{base}: holds {[s.name for s in existing]} but no {MARKER} marker; refusing to overwrite what may be "
            "the real DVSGesture. Choose another root for the synthetic set"
        )
    base.mkdir(parents=True, exist_ok=True)
    (base / ".synthetic_generating").write_text(digest)
    marker.unlink(missing_ok=True)
    for split in existing:
        shutil.rmtree(split)
    counts = {"train": _write_split(Path(root), config, True), "test": _write_split(Path(root), config, False)}
    tmp = base / f"{MARKER}.tmp{os.getpid()}"
    tmp.write_text(json.dumps({"hash": digest, "config": asdict(config), "files": counts}, indent=2, sort_keys=True))
    os.replace(tmp, marker)
    (base / ".synthetic_generating").unlink()
    return True
