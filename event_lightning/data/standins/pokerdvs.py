"""An offline POKER-DVS stand-in: card pips sweeping across a 35x35 sensor, simulated into events.

Written in the layout tonic 1.7's ``POKERDVS`` reads (``<root>/POKERDVS/pips_{train,test}/<class>/
*.npy`` int arrays with columns t, x, y, p, plus the ``pips_*.tar.gz`` archives it insists on),
so the stand-in goes through the real reading path. Deterministic for a seed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from event_lightning.data.standins.folders import ensure_standin, standin_folder
from event_lightning.events.formats.tonic_npy import write_tonic_npy
from event_lightning.events.simulate import SimulatorConfig, simulate_events

CLASSES = ("cl", "he", "di", "sp")
SENSOR = 35
_SUPERSAMPLE = 4


@dataclass(frozen=True)
class SyntheticPokerConfig:
    """Size and motion of the stand-in (durations in µs, sizes in pixels)."""

    seed: int = 0
    train_per_class: int = 12  # 48 train recordings, as tonic's split
    test_per_class: int = 5  # 20 test recordings
    # a card crossed the real DVS's view in about 20-30 ms (Serrano-Gotarredona & Linares-Barranco 2015)
    duration_us: int = 25_000
    frame_interval_us: int = 1_000
    pip_radius: float = 9.0


def _pip_mask(kind: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-test of a pip in unit coordinates (``v`` points up; the pip spans about [-1, 1])."""
    heart = (u**2 + (1.2 * v) ** 2 - 1) ** 3 - u**2 * (1.2 * v) ** 3 < 0
    if kind == "di":
        return np.abs(u) + np.abs(v) * 0.8 < 1
    if kind == "he":
        return heart
    stem = (v < -0.2) & (v > -1.1) & (np.abs(u) < 0.15 + 0.35 * (-0.2 - v))
    if kind == "sp":
        upside_down = (u**2 + (1.2 * -v) ** 2 - 1) ** 3 - u**2 * (1.2 * -v) ** 3 < 0
        return (upside_down & (v > -0.5)) | stem
    if kind == "cl":
        lobes = (u**2 + (v - 0.45) ** 2 < 0.2) | ((u - 0.45) ** 2 + v**2 < 0.2) | ((u + 0.45) ** 2 + v**2 < 0.2)
        return lobes | stem
    raise ValueError(f"unknown pip kind {kind!r}; expected one of {CLASSES}")


def render_pip_sweep(kind: str, centers: np.ndarray, radius: float) -> np.ndarray:
    """Dark pip on a bright card, anti-aliased: ``centers [N, 2]`` (x, y) pixels -> ``[N, 35, 35]`` in [0, 1]."""
    fine = (np.arange(SENSOR * _SUPERSAMPLE) + 0.5) / _SUPERSAMPLE
    x = fine[None, None, :] - centers[:, 0, None, None]
    y = fine[None, :, None] - centers[:, 1, None, None]
    inside = _pip_mask(kind, x / radius, -y / radius)
    coverage = inside.reshape(len(centers), SENSOR, _SUPERSAMPLE, SENSOR, _SUPERSAMPLE).mean(axis=(2, 4))
    return 0.85 - 0.75 * coverage


def _recording(kind: str, config: SyntheticPokerConfig, rng: np.random.Generator) -> np.ndarray:
    """One sweep of one pip as events."""
    n_frames = config.duration_us // config.frame_interval_us + 1
    angle = rng.uniform(0, 2 * np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    middle = SENSOR / 2 + rng.normal(0, 2, size=2)
    travel = rng.uniform(14, 22)
    progress = np.linspace(-0.5, 0.5, n_frames)[:, None]
    centers = middle + progress * travel * direction
    frames = render_pip_sweep(kind, centers, config.pip_radius * rng.uniform(0.85, 1.15))
    timestamps = np.arange(n_frames, dtype=np.int64) * config.frame_interval_us
    simulator = SimulatorConfig(refractory_us=500, noise_rate_hz=2.0)
    return simulate_events(frames, timestamps, simulator, rng)


def _config_key(config: SyntheticPokerConfig) -> str:
    return hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()[:16]


def synthetic_pokerdvs_complete(root: str | Path, config: SyntheticPokerConfig) -> bool:
    """Whether ``root/POKERDVS`` holds the stand-in of ``config`` (its marker); reads only."""
    marker = Path(root) / "POKERDVS" / ".synthetic"
    return marker.is_file() and marker.read_text() == _config_key(config)


def synthetic_pokerdvs_folder(root: str | Path, config: SyntheticPokerConfig) -> Path:
    """Where a DataModule reads the stand-in from (``root`` or ``root/synthetic-pokerdvs-<key>``); writes nothing."""
    return standin_folder(root, "pokerdvs", _config_key(config), lambda f: synthetic_pokerdvs_complete(f, config))


def ensure_synthetic_pokerdvs(folder: Path, config: SyntheticPokerConfig) -> Path:
    """Write the stand-in into ``folder`` (from :func:`synthetic_pokerdvs_folder`) unless it is there."""
    return ensure_standin(
        folder,
        lambda staging: generate_synthetic_pokerdvs(staging, config=config),
        lambda f: synthetic_pokerdvs_complete(f, config),
        asdict(config),
    )


def generate_synthetic_pokerdvs(root: str | Path, seed: int = 0, config: SyntheticPokerConfig | None = None) -> Path:
    """Write the stand-in under ``root/POKERDVS`` unless an identical one is there; return that folder.

    The folder is built in a temporary directory and moved into place, so an interrupted run
    leaves no half-written dataset behind.
    """
    config = config or SyntheticPokerConfig(seed=seed)
    location = Path(root) / "POKERDVS"
    if synthetic_pokerdvs_complete(root, config):
        return location
    rng = np.random.default_rng(config.seed)
    Path(root).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        staging = Path(tmp) / "POKERDVS"
        for split, per_class in (("pips_train", config.train_per_class), ("pips_test", config.test_per_class)):
            for kind in CLASSES:
                folder = staging / split / kind
                folder.mkdir(parents=True)
                for index in range(per_class):
                    write_tonic_npy(folder / f"{kind}{index:03d}.npy", _recording(kind, config, rng))
            with tarfile.open(staging / f"{split}.tar.gz", "w:gz") as tar:
                tar.add(staging / split, arcname=split)
        (staging / ".synthetic").write_text(_config_key(config))
        if location.exists():
            shutil.rmtree(location)
        staging.rename(location)
    return location
