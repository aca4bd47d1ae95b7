"""Synthetic N-MNIST stand-in: scikit-learn's handwritten digits, drawn like MNIST, moved by saccades, seen by a DVS.

What the real N-MNIST is (Orchard et al. 2015) and what this stand-in copies: an ATIS (34x34
pixels after cropping, two polarities) watched MNIST digits on a monitor while a pan-tilt unit
moved it through three ~100 ms saccades -- the isosceles triangle ``(0,0) -> (3.5,7) -> (7,0) ->
(0,0)`` pixels (x, y), the path tonic's ``stabilize`` undoes -- so a recording lasts ~300-336 ms
and holds ~1.5k-7k events, ON and OFF about equally. MNIST digits are 28x28 images whose ink is
scaled into a 20x20 box and centred by its centre of mass; the monitor showed them at about one
sensor pixel per MNIST pixel.

Each sample here is a real handwritten digit from :func:`sklearn.datasets.load_digits` (8x8
pixels, 17 grey levels, 1797 images shipped with scikit-learn, so nothing downloads), upscaled to
MNIST's 20x20 box with cubic splines and given MNIST's stroke width and sharpness by a contrast
ramp (:func:`~event_lightning.data.standins.digits.mnist_style_digits`: mean ink 0.13 and
standard deviation 0.31 over the 28x28 canvas, MNIST's are 0.1307 / 0.3081), centred by centre of
mass in a 28x28 canvas, drawn bright on a dark
background on the 34x34 sensor and moved along the saccades at N-MNIST's speed (one saccade per
``saccade_duration_us``, 100 ms), rendered with bilinear sub-pixel shifts at ``frame_interval_us``
and turned into events by :func:`event_lightning.events.simulate.simulate_events` (which places
each event at the time its ramp crosses the threshold, so events are not quantised to frames).
Files are written in the real N-MNIST ``.bin`` format and folder layout
(``Train/<digit>/<index>.bin``, ``Test/<digit>/<index>.bin``) and read back by the real reader,
:func:`event_lightning.events.formats.read_nmnist_bin`. A model trained here sees digits of the
size, stroke width, motion and event count of real N-MNIST (``docs/datasets.md`` lists both).

Split: fixed, whatever the seed -- per class, a fixed random quarter of ``load_digits`` (450
images) is the test pool and the rest (1347) the training pool, so no handwritten image is in
both splits (:func:`split_pool_indices`).  The seed picks which pool images are used and in what
order, the per-sample start offset, the sensor's threshold mismatch and the background noise.
Same config, same bytes. Generation shows a progress bar (tqdm, on stderr).

Completion marker: ``root/.complete`` holds the config and its hash; :func:`generate_synthetic_nmnist`
returns at once when it matches (and the files are all there) and regenerates when the config
changed.  It refuses to touch a ``Train``/``Test`` folder it did not create (a real N-MNIST copy).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from event_lightning.data.standins.digits import MNIST_CANVAS_PX, mnist_style_digits
from event_lightning.data.standins.folders import ensure_standin, standin_folder
from event_lightning.events.core import SensorSize
from event_lightning.events.formats.nmnist import NMNIST_SENSOR_SIZE, write_nmnist_bin
from event_lightning.events.simulate import SimulatorConfig, simulate_events

__all__ = [
    "SYNTHETIC_NMNIST_CLASSES",
    "SYNTHETIC_NMNIST_SENSOR_SIZE",
    "SyntheticDigitsConfig",
    "SyntheticDigitsSummary",
    "config_hash",
    "ensure_synthetic_nmnist",
    "generate_synthetic_nmnist",
    "read_synthetic_nmnist_split",
    "split_pool_indices",
    "synthetic_nmnist_complete",
    "synthetic_nmnist_folder",
]

SYNTHETIC_NMNIST_SENSOR_SIZE: SensorSize = NMNIST_SENSOR_SIZE
SYNTHETIC_NMNIST_CLASSES = 10
TRAIN_FOLDER, TEST_FOLDER = "Train", "Test"
COMPLETE_MARKER, IN_PROGRESS_MARKER = ".complete", ".generating"
# Bump when the generator's output changes for an unchanged config, so old copies regenerate.
GENERATOR_VERSION = 3
# The fixed split of load_digits: per class, a fixed random quarter of the images is the test pool.
# The seed is a constant (not the config's), so the split never changes.
SPLIT_SEED = 20_150_437
TEST_FRACTION = 0.25
# N-MNIST's saccade triangle, (dx, dy) in pixels at the start of saccades 1, 2, 3 and the end.
SACCADE_VERTICES_PX = np.array([[0.0, 0.0], [3.5, 7.0], [7.0, 0.0], [0.0, 0.0]])
# Samples simulated side by side as one wide sensor (pixels are independent); part of the
# output's definition, since the random draws are made per batch.
_BATCH = 64


@dataclass(frozen=True)
class SyntheticDigitsConfig:
    """What shapes the synthetic N-MNIST set; every field goes into the completion hash.

    Attributes:
        n_train: training samples (drawn from the 1347-image training pool; more than that
            reuses images with new offsets, mismatch and noise).
        n_test: test samples (from the 450-image test pool, reused likewise beyond 450).
        seed: selects images, offsets, threshold mismatch and noise.
        saccade_duration_us: duration of each of the three saccades, µs.
        frame_interval_us: time between rendered intensity frames, µs.
        digit_box_px: side of the box the digit is scaled into, pixels (MNIST: 20, in a 28x28 canvas
            shown at one sensor pixel per MNIST pixel).
        background: intensity of the screen, in [0, 1).
        foreground: intensity of a full-ink stroke, in (background, 1].
        position_jitter_px: the start offset is uniform in +-this, per sample and axis.
        pos_threshold, neg_threshold, threshold_sigma, refractory_us, noise_rate_hz:
            the simulated sensor (see :class:`SimulatorConfig`).
    """

    n_train: int = 1000
    n_test: int = 300
    seed: int = 0
    saccade_duration_us: int = 100_000
    frame_interval_us: int = 4_000
    digit_box_px: int = 20
    background: float = 0.2
    foreground: float = 0.8
    position_jitter_px: float = 0.5
    pos_threshold: float = 0.3
    neg_threshold: float = 0.3
    threshold_sigma: float = 0.03
    refractory_us: int = 0
    noise_rate_hz: float = 0.5

    def __post_init__(self) -> None:
        for name in ("n_train", "n_test", "saccade_duration_us", "frame_interval_us", "digit_box_px"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"SyntheticDigitsConfig.{name} must be a positive integer, found {value!r}")
        if self.frame_interval_us > self.saccade_duration_us:
            raise ValueError(
                f"SyntheticDigitsConfig.frame_interval_us ({self.frame_interval_us}) must not exceed "
                f"saccade_duration_us ({self.saccade_duration_us})"
            )
        if not 0.0 <= self.background < self.foreground <= 1.0:
            raise ValueError(
                "SyntheticDigitsConfig needs 0 <= background < foreground <= 1; found "
                f"background={self.background}, foreground={self.foreground}"
            )
        if self.position_jitter_px < 0:
            raise ValueError(
                f"SyntheticDigitsConfig.position_jitter_px must be >= 0, found {self.position_jitter_px}"
            )
        self.simulator_config()  # validates the sensor fields

    def simulator_config(self) -> SimulatorConfig:
        """The :class:`SimulatorConfig` these fields describe."""
        return SimulatorConfig(
            pos_threshold=self.pos_threshold,
            neg_threshold=self.neg_threshold,
            threshold_sigma=self.threshold_sigma,
            refractory_us=self.refractory_us,
            noise_rate_hz=self.noise_rate_hz,
        )

    @property
    def duration_us(self) -> int:
        """Length of one recording, µs (three saccades)."""
        return 3 * self.saccade_duration_us


@dataclass(frozen=True)
class SyntheticDigitsSummary:
    """What :func:`generate_synthetic_nmnist` produced (or found already there)."""

    root: str
    config_hash: str
    n_train: int
    n_test: int
    duration_us: int
    events_per_sample_mean: float
    events_per_sample_min: int
    events_per_sample_max: int
    seconds: float
    regenerated: bool

    def as_dict(self) -> dict:
        return asdict(self)


def config_hash(config: SyntheticDigitsConfig) -> str:
    """Stable hash of every config field and the generator version (16 hex digits)."""
    payload = {"generator_version": GENERATOR_VERSION, **asdict(config)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def split_pool_indices(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fixed class-stratified split of ``load_digits``: sorted ``(train_indices, test_indices)``.

    Per class, ``round(TEST_FRACTION * count)`` images drawn with the constant ``SPLIT_SEED``
    go to the test pool.  Not a contiguous tail: load_digits is not shuffled, and its last
    quarter is markedly harder than a random quarter (logistic regression on the 8x8 pixels:
    92 % on the tail vs 95-98 % on random quarters), which would make the stand-in's accuracy
    depend on a few atypical writers rather than on the pipeline under test.
    """
    rng = np.random.default_rng(SPLIT_SEED)
    test = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        test.append(rng.permutation(members)[: round(TEST_FRACTION * members.size)])
    test_indices = np.sort(np.concatenate(test))
    return np.setdiff1d(np.arange(labels.size), test_indices), test_indices


def _load_digit_pool(train: bool) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[M, 8, 8]`` in [0, 1] and labels ``[M]`` of one fixed split pool."""
    from sklearn.datasets import load_digits  # deferred: scikit-learn is slow to import

    digits = load_digits()
    labels = digits.target.astype(np.int64)
    pool = split_pool_indices(labels)[0 if train else 1]
    return digits.images[pool] / 16.0, labels[pool]


def _saccade_path(config: SyntheticDigitsConfig) -> tuple[np.ndarray, np.ndarray]:
    """Frame times ``[N]`` (µs) and the digit's displacement ``[N, 2]`` (dx, dy pixels)."""
    times = np.arange(0, config.duration_us + 1, config.frame_interval_us, dtype=np.int64)
    if times[-1] != config.duration_us:
        times = np.append(times, config.duration_us)
    vertex_times = np.arange(4) * config.saccade_duration_us
    shift = np.stack([np.interp(times, vertex_times, SACCADE_VERTICES_PX[:, i]) for i in range(2)], axis=1)
    return times, shift


def _tent_weights(positions: np.ndarray, size: int) -> np.ndarray:
    """Bilinear interpolation weights ``[..., P, size]``: ``max(0, 1 - |position - i|)``.

    ``positions`` ``[..., P]`` are image coordinates of the P sensor rows (or columns); a
    position outside the image gets zero weight, i.e. background.
    """
    distance = np.abs(positions.astype(np.float32)[..., None] - np.arange(size, dtype=np.float32))
    return np.maximum(np.float32(0.0), np.float32(1.0) - distance)


def _render(images: np.ndarray, offsets: np.ndarray, sensor: SensorSize) -> np.ndarray:
    """Bilinear rendering of translated images.

    A translation is separable, so each frame is ``Wy @ image @ Wx.T`` with tent-weight
    matrices ``Wy`` ``[H, S]`` and ``Wx`` ``[W, S]``: two small batched matmuls instead of a
    per-pixel gather.

    Args:
        images: ``[B, S, S]`` ink in [0, 1].
        offsets: ``[N, B, 2]`` top-left corner (x, y) of each image on the sensor, pixels.

    Returns:
        ``[N, B, H, W]`` ink in [0, 1]: sensor pixel (r, c) samples the image at (r - y, c - x).
    """
    size = images.shape[-1]
    w_rows = _tent_weights(np.arange(sensor.height) - offsets[..., 1:2], size)  # [N, B, H, S]
    w_cols = _tent_weights(np.arange(sensor.width) - offsets[..., 0:1], size)  # [N, B, W, S]
    images = images.astype(np.float32)
    return np.clip((w_rows @ images[None]) @ w_cols.swapaxes(-1, -2), 0.0, 1.0)


def _simulate_batch(
    images: np.ndarray, centres: np.ndarray, config: SyntheticDigitsConfig, rng: np.random.Generator
) -> list[np.ndarray]:
    """Events of ``images`` ``[B, S, S]`` (centres of mass ``[B, 2]``, x, y) moved along the saccades."""
    sensor = SYNTHETIC_NMNIST_SENSOR_SIZE
    batch = images.shape[0]
    times, shift = _saccade_path(config)
    # The 28x28 canvas centred on the sensor with the triangle's bounding box, the digit's centre of
    # mass at the canvas centre (as MNIST), then a per-sample jitter of the start.
    canvas = (np.array([sensor.width, sensor.height]) - SACCADE_VERTICES_PX.max(axis=0) - MNIST_CANVAS_PX) / 2
    centred = canvas + (MNIST_CANVAS_PX - 1) / 2 - centres
    start = centred + rng.uniform(-config.position_jitter_px, config.position_jitter_px, size=(batch, 2))
    ink = _render(images, start[None, :, :] + shift[:, None, :], sensor)
    contrast = np.float32(config.foreground - config.background)
    intensity = np.float32(config.background) + contrast * ink  # [N, B, H, W], float32
    # Side by side on one wide sensor: [N, H, B * W]; pixels never interact, so this is B sensors.
    wide = intensity.transpose(0, 2, 1, 3).reshape(len(times), sensor.height, batch * sensor.width)
    events = simulate_events(wide, times, config.simulator_config(), rng)
    sample = events["x"] // sensor.width
    order = np.argsort(sample, kind="stable")  # keeps time order within a sample
    events, sample = events[order], sample[order]
    events["x"] = events["x"] % sensor.width
    bounds = np.searchsorted(sample, np.arange(batch + 1))
    return [events[bounds[i] : bounds[i + 1]] for i in range(batch)]


def _select(n: int, pool_size: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` pool indices: a random permutation of the pool, repeated (re-permuted) if needed."""
    rounds = -(-n // pool_size)
    return np.concatenate([rng.permutation(pool_size) for _ in range(rounds)])[:n]


def _generate_split(root: Path, config: SyntheticDigitsConfig, train: bool, progress: tqdm) -> list[int]:
    images, labels = _load_digit_pool(train)
    n = config.n_train if train else config.n_test
    split_code = 0 if train else 1
    n_batches = -(-n // _BATCH)
    streams = np.random.SeedSequence([config.seed, split_code]).spawn(n_batches + 1)
    chosen = _select(n, len(images), np.random.default_rng(streams[0]))
    used = np.unique(chosen)
    ink, centres = mnist_style_digits(images[used], config.digit_box_px)
    rows = np.searchsorted(used, chosen)  # row of each chosen image in ink / centres
    folder = root / (TRAIN_FOLDER if train else TEST_FOLDER)
    counts = []
    for b in range(n_batches):
        batch = slice(b * _BATCH, (b + 1) * _BATCH)
        per_sample = _simulate_batch(
            ink[rows[batch]], centres[rows[batch]], config, np.random.default_rng(streams[b + 1])
        )
        for index, pool_index, events in zip(range(n)[batch], chosen[batch], per_sample, strict=True):
            write_nmnist_bin(folder / str(int(labels[pool_index])) / f"{index:05d}.bin", events)
            counts.append(len(events))
        progress.update(len(per_sample))
    return counts


def _count_files(root: Path) -> tuple[int, int]:
    return tuple(len(list((root / name).glob("*/*.bin"))) for name in (TRAIN_FOLDER, TEST_FOLDER))


def _complete_record(root: Path, config: SyntheticDigitsConfig) -> dict | None:
    """The completion record under ``root`` when it holds all files of exactly ``config``, else None."""
    try:
        record = json.loads((root / COMPLETE_MARKER).read_text())
    except (OSError, ValueError):
        return None
    fresh = isinstance(record, dict) and record.get("hash") == config_hash(config)
    if fresh and isinstance(record.get("summary"), dict) and _count_files(root) == (config.n_train, config.n_test):
        return record
    return None


def synthetic_nmnist_complete(root: str | os.PathLike, config: SyntheticDigitsConfig) -> bool:
    """Whether ``root`` holds the whole synthetic set of ``config`` (its marker and every file); reads only."""
    return _complete_record(Path(root), config) is not None


def synthetic_nmnist_folder(root: str | os.PathLike, config: SyntheticDigitsConfig, subfolder: str = "") -> Path:
    """Where a DataModule reads the stand-in of ``config`` from; writes nothing.

    ``root`` when ``root/subfolder`` already holds it, else ``root/synthetic-nmnist-<key>``
    (:func:`~event_lightning.data.standins.folders.standin_folder`). ``subfolder`` is ``"NMNIST"``
    for tonic's layout (``NMNIST/Train/...``), ``""`` for ``Train/...`` at the top.
    """
    return standin_folder(root, "nmnist", [config_hash(config), subfolder], _completeness(config, subfolder))


def ensure_synthetic_nmnist(folder: Path, config: SyntheticDigitsConfig, subfolder: str = "") -> Path:
    """Write the stand-in into ``folder`` (from :func:`synthetic_nmnist_folder`) unless it is there."""

    def write(staging: Path) -> None:
        generate_synthetic_nmnist(staging / subfolder, config)

    return ensure_standin(folder, write, _completeness(config, subfolder), asdict(config))


def _completeness(config: SyntheticDigitsConfig, subfolder: str):
    return lambda folder: synthetic_nmnist_complete(folder / subfolder, config)


def generate_synthetic_nmnist(
    root: str | os.PathLike, config: SyntheticDigitsConfig | None = None, *, force: bool = False
) -> SyntheticDigitsSummary:
    """Write the synthetic N-MNIST set under ``root`` (``Train/`` and ``Test/``), unless already there.

    Args:
        root: folder to hold ``Train/<digit>/<index>.bin``, ``Test/<digit>/<index>.bin`` and the
            ``.complete`` marker.
        config: what to generate (defaults: :class:`SyntheticDigitsConfig`).
        force: regenerate even when the marker matches.

    Returns:
        A :class:`SyntheticDigitsSummary`; ``regenerated`` is False when the existing files were
        kept.

    Raises:
        FileExistsError: ``root`` holds ``Train``/``Test`` folders this generator did not write.
    """
    config = config or SyntheticDigitsConfig()
    root = Path(root)
    digest = config_hash(config)
    complete, in_progress = root / COMPLETE_MARKER, root / IN_PROGRESS_MARKER
    record = None if force else _complete_record(root, config)
    if record is not None:
        return SyntheticDigitsSummary(**{**record["summary"], "root": str(root), "regenerated": False})
    ours = complete.exists() or in_progress.exists()
    existing = [name for name in (TRAIN_FOLDER, TEST_FOLDER) if (root / name).exists()]
    if existing and not ours:
        raise FileExistsError(
            f"{root}: holds {existing} but no {COMPLETE_MARKER} marker of the synthetic N-MNIST "
            "generator; refusing to overwrite what may be a real N-MNIST copy. Choose another root "
            "or delete those folders"
        )

    started = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    in_progress.write_text(digest)
    complete.unlink(missing_ok=True)
    for name in existing:
        shutil.rmtree(root / name)
    # on stderr, like Lightning's own bars: the first run writes for a few seconds before training starts
    with tqdm(total=config.n_train + config.n_test, desc="N-MNIST stand-in", unit="recording") as progress:
        counts = _generate_split(root, config, True, progress) + _generate_split(root, config, False, progress)
    summary = SyntheticDigitsSummary(
        root=str(root),
        config_hash=digest,
        n_train=config.n_train,
        n_test=config.n_test,
        duration_us=config.duration_us,
        events_per_sample_mean=float(np.mean(counts)),
        events_per_sample_min=int(np.min(counts)),
        events_per_sample_max=int(np.max(counts)),
        seconds=round(time.perf_counter() - started, 3),
        regenerated=True,
    )
    record = {"hash": digest, "generator_version": GENERATOR_VERSION, "config": asdict(config)}
    record["summary"] = {k: v for k, v in summary.as_dict().items() if k not in ("root", "regenerated")}
    tmp = root / f"{COMPLETE_MARKER}.tmp{os.getpid()}"
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True))
    os.replace(tmp, complete)
    in_progress.unlink()
    return summary


def read_synthetic_nmnist_split(root: str | os.PathLike, train: bool) -> list[tuple[Path, int]]:
    """``(path, label)`` of every ``.bin`` file of one split, in N-MNIST's folder layout.

    Class folders are visited in numeric order and files in name order (the order tonic's
    ``NMNIST`` uses), so indices are stable.  Works on a real N-MNIST copy too.

    Raises:
        FileNotFoundError: the split folder is missing or holds no ``.bin`` file.
        ValueError: a class folder whose name is not a digit 0-9.
    """
    folder = Path(root) / (TRAIN_FOLDER if train else TEST_FOLDER)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder}: no such split folder; expected {folder}/<digit>/<index>.bin "
            "(generate it with generate_synthetic_nmnist)"
        )
    class_dirs = [d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")]
    names = {str(i) for i in range(SYNTHETIC_NMNIST_CLASSES)}
    wrong = sorted(d.name for d in class_dirs if d.name not in names)
    if wrong:
        raise ValueError(f"{folder}: class folders must be named 0-9 as in N-MNIST; found {wrong}")
    samples = [
        (path, int(d.name))
        for d in sorted(class_dirs, key=lambda d: int(d.name))
        for path in sorted(d.glob("*.bin"))
    ]
    if not samples:
        raise FileNotFoundError(f"{folder}: no .bin files under the class folders 0-9")
    return samples
