"""A synthetic stand-in for ASL-DVS: hand-like glyphs moving in front of a 240x180 event camera.

Every class is a hand outline (an elliptic palm and five fingers, each finger extended or folded
by a class-specific pattern, like the finger spellings of ASL letters).  A recording places the
hand near the centre of the sensor with random size, rotation and position, and moves it on a
small random oscillation; events fire on its edges with the polarity of the local brightness
change (the hand is brighter than the background: leading edges are ON, trailing edges OFF),
plus uniform background noise.  Event counts and durations follow the real recordings' published
statistics (:data:`REAL_MIN_EVENTS` .. :data:`REAL_MAX_EVENTS`, about :data:`REAL_MEAN_EVENTS` on
average, heavy-tailed; at most :data:`REAL_MAX_DURATION_US` long; docs/datasets.md has them side by
side with the stand-in's).  The files are written in the real layouts
(:func:`write_synthetic_asl_dvs`) and read back by the real readers, so the whole data path is
exercised without the 100,800 real recordings.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from event_lightning.data.standins.folders import ensure_standin, standin_folder
from event_lightning.events.core import SensorSize, make_events
from event_lightning.events.formats.asl_dvs_mat import ASL_DVS_CLASSES, ASL_DVS_SENSOR_SIZE, write_asl_dvs_mat
from event_lightning.events.formats.spikingjelly_npz import write_spikingjelly_npz

__all__ = [
    "REAL_MAX_DURATION_US",
    "REAL_MAX_EVENTS",
    "REAL_MEAN_EVENTS",
    "REAL_MIN_EVENTS",
    "SYNTHETIC_MARKER",
    "SyntheticASLConfig",
    "ensure_synthetic_asl_dvs",
    "finger_patterns",
    "synthetic_asl_dvs_complete",
    "synthetic_asl_dvs_folder",
    "synthetic_hand_events",
    "write_synthetic_asl_dvs",
]

SYNTHETIC_MARKER = "synthetic_asl_dvs.json"
# The real training recordings (the Event2Vec reference's hard-coded statistics, 80 640 recordings):
# 195 to 470 435 events, 2.268e9 in all (28 125 on average), the longest 521 217 µs.
REAL_MIN_EVENTS = 195
REAL_MAX_EVENTS = 470_435
REAL_MEAN_EVENTS = 28_125
REAL_MAX_DURATION_US = 521_217
# Event rate of a recording (events/s): log-normal around this median. Not published; chosen so that
# durations spread from a few ms to the real maximum (median about 140 ms).
_MEDIAN_RATE_HZ = 1.0e5
_RATE_SIGMA = 0.5
# Finger directions (degrees from "up", clockwise positive): thumb, index, middle, ring, little.
_FINGER_ANGLES = np.deg2rad([-75.0, -28.0, -8.0, 12.0, 32.0])
# Patterns listed first are the most different from each other, so small class counts separate well.
_PREFERRED_PATTERNS = (
    0b00000,
    0b11111,
    0b01000,
    0b10001,
    0b01100,
    0b10000,
    0b00001,
    0b01110,
    0b11000,
    0b00111,
)


@dataclass(frozen=True)
class SyntheticASLConfig:
    """Size and randomness of the stand-in.

    Attributes:
        num_classes: how many letters (the first ``num_classes`` of a, b, c, ... without j), <= 24.
        samples_per_class: recordings per letter.
        events_per_sample: mean number of events of a recording (real ASL-DVS: about 28k).
        count_sigma: spread of the (log-normal) event count, in log units; the real counts span
            195 - 470 435 around a mean of 28k (heavy-tailed: 1.0). Counts are clipped to that range.
        short_fraction: share of recordings with fewer than 255 events (real minimum: 195), so
            batches need padding as on the real data.
        noise_fraction: share of background-noise events.
        seed: the generator seed; the same config writes the same files.
        compressed: ``np.savez_compressed`` (spikingjelly's default) or plain ``np.savez``.
    """

    num_classes: int = 6
    samples_per_class: int = 60
    events_per_sample: int = REAL_MEAN_EVENTS
    count_sigma: float = 1.0
    short_fraction: float = 0.05
    noise_fraction: float = 0.05
    seed: int = 0
    compressed: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.num_classes <= len(ASL_DVS_CLASSES):
            raise ValueError(f"num_classes must be in [1, {len(ASL_DVS_CLASSES)}], found {self.num_classes}")
        if self.samples_per_class < 1 or self.events_per_sample < 1:
            raise ValueError("samples_per_class and events_per_sample must be >= 1")
        if not 0 <= self.count_sigma <= 3:
            raise ValueError(f"count_sigma must be in [0, 3], found {self.count_sigma}")
        if not (0 <= self.short_fraction <= 1 and 0 <= self.noise_fraction < 1):
            raise ValueError("short_fraction must be in [0, 1] and noise_fraction in [0, 1)")


def finger_patterns(num_classes: int) -> list[int]:
    """The 5-bit extended-finger pattern of each class (bit 4 = thumb ... bit 0 = little finger)."""
    rest = [m for m in range(32) if m not in _PREFERRED_PATTERNS]
    return [*_PREFERRED_PATTERNS, *rest][:num_classes]


def _hand_segments(pattern: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outline of a hand in hand coordinates (palm radius about 1, y up).

    Returns segment starts ``[S, 2]``, ends ``[S, 2]`` and outward unit normals ``[S, 2]``.
    """
    # Palm: an ellipse as 32 chords with normals pointing away from the centre.
    angles = np.linspace(0, 2 * np.pi, 33)
    rim = np.stack([0.85 * np.sin(angles), np.cos(angles)], axis=1)
    starts, ends = [rim[:-1]], [rim[1:]]
    mid = 0.5 * (rim[:-1] + rim[1:])
    normals = [mid / np.linalg.norm(mid, axis=1, keepdims=True)]
    for finger, angle in enumerate(_FINGER_ANGLES):
        extended = bool(pattern >> (4 - finger) & 1)
        length = 1.3 if extended else 0.35
        axis = np.array([np.sin(angle), np.cos(angle)])
        side = np.array([axis[1], -axis[0]])
        base = np.array([0.85 * np.sin(angle), np.cos(angle)]) * 0.95
        tip = base + length * axis
        half_width = 0.13
        # Two long edges and the fingertip, each with its outward normal.
        starts += [np.stack([base + half_width * side, base - half_width * side, tip - half_width * side])]
        ends += [np.stack([tip + half_width * side, tip - half_width * side, tip + half_width * side])]
        normals += [np.stack([side, -side, axis])]
    return np.concatenate(starts), np.concatenate(ends), np.concatenate(normals)


def synthetic_hand_events(
    rng: np.random.Generator,
    label: int,
    config: SyntheticASLConfig,
    sensor_size: SensorSize = ASL_DVS_SENSOR_SIZE,
) -> np.ndarray:
    """One recording of class ``label``: :data:`EVENT_DTYPE` events sorted by t (µs)."""
    pattern = finger_patterns(config.num_classes)[label]
    seg_start, seg_end, seg_normal = _hand_segments(pattern)
    if rng.random() < config.short_fraction:
        n = int(rng.integers(REAL_MIN_EVENTS, 255))
    else:
        # log-normal with mean events_per_sample (the -sigma^2/2 shift), clipped to the real range
        sigma = config.count_sigma
        n = int(np.clip(config.events_per_sample * rng.lognormal(-0.5 * sigma**2, sigma), 255, REAL_MAX_EVENTS))
    n_noise = int(round(n * config.noise_fraction))
    n_edge = n - n_noise

    # Busier recordings last longer, as when a hand moves for longer; none exceeds the real maximum.
    rate_hz = _MEDIAN_RATE_HZ * rng.lognormal(0.0, _RATE_SIGMA)
    duration = float(np.clip(n / rate_hz * 1e6, 1e3, REAL_MAX_DURATION_US - 20e3))
    t0 = rng.uniform(0, 20e3)
    t = np.sort(rng.uniform(0, duration, size=n_edge))

    # Points on the outline, chosen in proportion to segment length.
    lengths = np.linalg.norm(seg_end - seg_start, axis=1)
    segment = rng.choice(len(lengths), size=n_edge, p=lengths / lengths.sum())
    u = rng.random(n_edge)[:, None]
    points = seg_start[segment] * (1 - u) + seg_end[segment] * u
    normals = seg_normal[segment]

    # Pose: scale (pixels per hand unit), rotation, centre near the middle, small oscillation.
    scale = sensor_size.height * 0.16 * rng.uniform(0.85, 1.15)
    theta = np.deg2rad(rng.uniform(-12, 12))
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    centre = np.array([sensor_size.width / 2, sensor_size.height / 2 + 0.1 * sensor_size.height])
    centre = centre + rng.uniform(-12, 12, size=2)
    amplitude = rng.uniform(3, 8, size=2)
    frequency = rng.uniform(2, 5) * 2 * np.pi / 1e6  # rad per µs
    phase = rng.uniform(0, 2 * np.pi, size=2)
    offset = amplitude * np.sin(frequency * t[:, None] + phase)
    velocity = amplitude * frequency * np.cos(frequency * t[:, None] + phase)

    # Hand coordinates have y up; the sensor's y grows downwards.
    flip = np.array([1.0, -1.0])
    xy = (points @ rotation.T) * scale * flip + centre + offset + rng.normal(0, 0.6, size=(n_edge, 2))
    outward = (normals @ rotation.T) * flip
    polarity = (outward * velocity).sum(axis=1) + rng.normal(0, 0.15, size=n_edge) * np.abs(velocity).max() > 0

    noise_xy = rng.uniform([0, 0], [sensor_size.width, sensor_size.height], size=(n_noise, 2))
    noise_t = rng.uniform(0, duration, size=n_noise)
    x = np.concatenate([xy[:, 0], noise_xy[:, 0]])
    y = np.concatenate([xy[:, 1], noise_xy[:, 1]])
    p = np.concatenate([polarity, rng.random(n_noise) < 0.5])
    times = np.concatenate([t, noise_t]) + t0
    order = np.argsort(times, kind="stable")
    x = np.clip(np.floor(x[order]), 0, sensor_size.width - 1)
    y = np.clip(np.floor(y[order]), 0, sensor_size.height - 1)
    return make_events(x, y, times[order].astype(np.int64), p[order])


def _layout(root: Path, file_format: str) -> tuple[Path, str]:
    if file_format == "npz":
        return root / "events_np", ".npz"
    if file_format == "mat":
        return root / "ASLDVS", ".mat"
    raise ValueError(f"format must be 'npz' or 'mat', found {file_format!r}")


def synthetic_asl_dvs_complete(root: str | Path, config: SyntheticASLConfig, file_format: str = "npz") -> bool:
    """Whether ``root`` holds the stand-in of ``config`` in ``file_format`` (its marker and folder); reads only."""
    root = Path(root)
    try:
        record = json.loads((root / SYNTHETIC_MARKER).read_text())
    except (OSError, ValueError):
        return False
    return record == {**asdict(config), "file_format": file_format} and _layout(root, file_format)[0].is_dir()


def synthetic_asl_dvs_folder(root: str | Path, config: SyntheticASLConfig, file_format: str = "npz") -> Path:
    """Where a DataModule reads the stand-in from (``root`` or ``root/synthetic-asl_dvs-<key>``); writes nothing."""
    params = {**asdict(config), "file_format": file_format}
    return standin_folder(root, "asl_dvs", params, lambda f: synthetic_asl_dvs_complete(f, config, file_format))


def ensure_synthetic_asl_dvs(folder: Path, config: SyntheticASLConfig, file_format: str = "npz") -> Path:
    """Write the stand-in into ``folder`` (from :func:`synthetic_asl_dvs_folder`) unless it is there."""
    return ensure_standin(
        folder,
        lambda staging: write_synthetic_asl_dvs(staging, config, file_format=file_format),
        lambda f: synthetic_asl_dvs_complete(f, config, file_format),
        {**asdict(config), "file_format": file_format},
    )


def write_synthetic_asl_dvs(
    root: str | Path, config: SyntheticASLConfig | None = None, *, file_format: str = "npz"
) -> list[Path]:
    """Write the stand-in under ``root`` in the real on-disk layout and return the files written.

    ``file_format="npz"``: spikingjelly's ``root/events_np/<letter>/<letter>_NNNN.npz``;
    ``"mat"``: the original release as tonic extracts it, ``root/ASLDVS/<letter>/<letter>_NNNN.mat``.
    A marker ``root/synthetic_asl_dvs.json`` records the config: the same config is not written
    twice, a different one replaces the previous stand-in, and a folder that holds events without
    the marker (real data) is never overwritten.
    """
    config = config or SyntheticASLConfig()
    root = Path(root)
    folder, suffix = _layout(root, file_format)
    marker = root / SYNTHETIC_MARKER
    record = {**asdict(config), "file_format": file_format}
    if folder.exists():
        if not marker.is_file():
            raise FileExistsError(
                f"{folder} exists but holds no {SYNTHETIC_MARKER}: it may be the real dataset; "
                "point the synthetic stand-in at another root"
            )
        if synthetic_asl_dvs_complete(root, config, file_format):
            return sorted(folder.glob(f"*/*{suffix}"))
        shutil.rmtree(folder)
    rng = np.random.default_rng(config.seed)
    written = []
    for label, letter in enumerate(ASL_DVS_CLASSES[: config.num_classes]):
        for index in range(config.samples_per_class):
            events = synthetic_hand_events(rng, label, config)
            path = folder / letter / f"{letter}_{index:04d}{suffix}"
            if file_format == "npz":
                written.append(write_spikingjelly_npz(path, events, compressed=config.compressed))
            else:
                written.append(write_asl_dvs_mat(path, events))
    marker.write_text(json.dumps(record, indent=1))
    return written
