"""MNIST transformation sequences for the Topographic VAE.

Used by the MNIST configs of the TVAE family: ``config/tvae_*_mnist*.yaml`` (``tvae_L0``,
``tvae_Lhalf``, ``tvae_Lshort``, ``tvae_Lpartial``, its ``rotcolor``, ``perspective`` and
``generalization`` variants, ``tvae_2d``), ``config/nontvae_mnist*.yaml`` and
``config/bubbles_mnist*.yaml``; the ``*_synthetic.yaml`` ones on the stand-in.

Each item is one digit turned into a sequence of S frames (S = 18 by default) by rotation,
scaling and hue rotation (colour MNIST: the grey digit in the red channel). Three kinds of
sequence:

* ``single``: every list (angles, hues, scales) is rolled cyclically by its own random start;
  one transformation is chosen uniformly and steps through its rolled list frame by frame, the
  other two stay at a random value of their lists;
* ``dual``: rotation and hue change together (independent random starts), scale 1;
* ``perspective``: a 3-D turn of the digit plane about the y and z axes by the rolled angle,
  with the hue changing together, scale 1.

Items carry the untransformed digit and the per-frame parameters; the frames are rendered
batched on the device in :meth:`MNISTSequenceDataModule.on_after_batch_transfer`, so a batch
reaching the model is ``(x [B, S, C, 28, 28] float in [0, 1], labels [B])``.

Data: the four MNIST IDX files (``train-images-idx3-ubyte`` ...; gzip allowed; read by
:mod:`event_lightning.data.loading.mnist_idx`) in ``root`` or ``root/MNIST/raw``. ``synthetic: true``
writes scikit-learn's 8x8 digits, upscaled to 28x28, as IDX files there
(:mod:`event_lightning.data.standins.mnist`) and reads them back with the same reader.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from event_lightning.data.loading.image_transforms import (
    hsv_to_rgb,
    perspective_matrix,
    rotation_scale_matrix,
    warp_homography,
)
from event_lightning.data.loading.loaders import LoaderSettings, build_loader
from event_lightning.data.loading.missing_data import DatasetSource, dataset_not_found
from event_lightning.data.loading.mnist_idx import MNIST_FILES, IDXFormatError, read_idx
from event_lightning.data.loading.predict_samples import PredictSamples
from event_lightning.data.standins.mnist import ensure_synthetic_mnist, synthetic_mnist_folder

log = logging.getLogger(__name__)

DEFAULT_ANGLES = [float(a) for a in range(0, 360, 20)]
DEFAULT_COLOURS = [float(c) for c in range(0, 360, 20)]
DEFAULT_SCALES = [
    0.60,
    0.64,
    0.68,
    0.72,
    0.76,
    0.79,
    0.83,
    0.87,
    0.91,
    0.95,
    0.99,
    1.03,
    1.07,
    1.11,
    1.14,
    1.18,
    1.22,
    1.26,
]
SEQUENCE_KINDS = ("single", "dual", "perspective")
MNIST_SOURCE = DatasetSource(
    "MNIST",
    "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte "
    "(.gz allowed) in <root> or <root>/MNIST/raw",
    "this project does not download MNIST (torchvision is not used): download the four files from "
    "yann.lecun.com/exdb/mnist or a mirror (e.g. ossci-datasets.s3.amazonaws.com/mnist) and put them there",
    "--data.init_args.synthetic true, or config/tvae_Lpartial_mnist_synthetic.yaml (and the other "
    "config/*_mnist_synthetic.yaml)",
)


def find_mnist_file(root: str | Path, name: str) -> Path:
    """``name`` (or ``name.gz``) in ``root`` or ``root/MNIST/raw``; a :class:`DatasetNotFoundError` saying
    what to do when absent."""
    root = Path(root)
    candidates = [folder / f"{name}{ext}" for folder in (root, root / "MNIST" / "raw") for ext in ("", ".gz")]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(c) for c in candidates)
    raise dataset_not_found(MNIST_SOURCE, root, searched, f"the IDX file {name!r} is missing")


def load_mnist_split(root: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [N, H, W] and labels int64 [N] of the ``train`` or ``test`` split."""
    if split not in MNIST_FILES:
        raise ValueError(f"unknown MNIST split {split!r}; expected 'train' or 'test'")
    image_path, label_path = (find_mnist_file(root, name) for name in MNIST_FILES[split])
    images = read_idx(image_path, expected_ndim=3)
    labels = read_idx(label_path, expected_ndim=1)
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise IDXFormatError(
            f"{image_path} / {label_path}: expected uint8 images and labels, found {images.dtype} / {labels.dtype}"
        )
    if len(images) != len(labels):
        raise IDXFormatError(f"{image_path} holds {len(images)} images but {label_path} holds {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise IDXFormatError(f"{label_path}: labels must be digits 0..9, found {int(labels.max())}")
    return images, labels.astype(np.int64)


@dataclass(frozen=True)
class SequenceSpec:
    """The transformation lists of one kind of sequence (angles in degrees, hues in radians)."""

    kind: str
    angles: tuple[float, ...]
    hues: tuple[float, ...]
    scales: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.kind not in SEQUENCE_KINDS:
            raise ValueError(f"unknown sequence kind {self.kind!r}; expected one of {SEQUENCE_KINDS}")
        if not (self.angles and self.hues and self.scales):
            raise ValueError("angle, colour and scale sets must each hold at least one value")
        length = self.length
        for name, values in (("angle_set", self.angles), ("colour_set", self.hues), ("scale_set", self.scales)):
            if len(values) not in (1, length):
                raise ValueError(
                    f"{name} has {len(values)} values; every set must have 1 or {length} (the sequence length)"
                )
        if self.kind != "single" and (len(self.angles) != length or len(self.hues) != length):
            raise ValueError(
                f"{self.kind} sequences need angle_set and colour_set of the same length, "
                f"got {len(self.angles)} and {len(self.hues)}"
            )

    @property
    def length(self) -> int:
        return max(len(self.angles), len(self.hues), len(self.scales))

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """Per-frame parameters [S, 3]: (angle degrees, scale, hue radians)."""
        length = self.length

        def rolled(values: tuple[float, ...]) -> np.ndarray:
            return np.roll(np.asarray(values, dtype=np.float64), -int(rng.integers(len(values))))

        angles, hues, scales = rolled(self.angles), rolled(self.hues), rolled(self.scales)
        if self.kind != "single":
            return np.stack([angles, np.ones(length), hues], -1).astype(np.float32)
        # Only a list as long as the sequence can be the one that moves.
        movable = [i for i, v in enumerate((angles, scales, hues)) if len(v) == length]
        moving = movable[int(rng.integers(len(movable)))]
        columns = []
        for i, values in enumerate((angles, scales, hues)):
            columns.append(values if i == moving else np.full(length, values[int(rng.integers(len(values)))]))
        return np.stack(columns, -1).astype(np.float32)


def hue_set(colour_degrees: list[float]) -> tuple[float, ...]:
    """Colour set in degrees -> hue shifts in radians, degrees * pi / 180 - pi (the reference's mapping)."""
    return tuple(float(np.radians(c) - np.pi) for c in colour_degrees)


class MNISTSequenceDataset(Dataset):
    """Digits with sampled sequence parameters; frames are rendered later, on the device.

    Item: (digit uint8 [1, H, W], label int64, params float32 [S, 3] (angle deg, scale, hue rad),
    kind int64: 1 for perspective views, 0 for rotation/scale).
    ``seed=None`` draws new parameters at every access; an int fixes them per index.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, spec: SequenceSpec, seed: int | None = None):
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.labels = torch.from_numpy(np.ascontiguousarray(labels))
        self.spec = spec
        self.seed = seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if self.seed is None:
            # torch's generator: Lightning seeds it (and each worker's) from seed_everything.
            rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
        else:
            rng = np.random.default_rng([self.seed, index])
        params = torch.from_numpy(self.spec.sample(rng))
        kind = torch.tensor(1 if self.spec.kind == "perspective" else 0)
        return self.images[index][None], self.labels[index], params, kind


def render_sequences(digits: Tensor, params: Tensor, kind: Tensor, colour: bool) -> Tensor:
    """Render frames batched on the digits' device.

    Colour frames are the reference's red digit with its hue rotated. A pure red pixel (g, 0, 0)
    has hue 0, saturation 1 and value g, so after a hue rotation by h it is g * rgb(h, 1, 1): the
    warped grey frame times one colour per frame, which is what is computed here (the same
    result as :func:`adjust_hue` on the red image, with one channel to warp instead of three).

    Args:
        digits: [B, 1, H, W] grey digits (uint8 0..255 or float in [0, 1]).
        params: [B, S, 3] (angle degrees, scale, hue radians) per frame.
        kind: [B], 1 = perspective view, 0 = rotation and scale about the centre.
        colour: put the digit in the red channel and rotate its hue.
    Returns:
        [B, S, C, H, W] float in [0, 1], C = 3 if colour else 1.
    """
    batch, seq_len, _ = params.shape
    height, width = digits.shape[-2:]
    x = digits.float() / 255.0 if digits.dtype == torch.uint8 else digits.float()
    angle, scale, hue = params.float().unbind(-1)
    use_perspective = (kind.to(params.device) == 1).view(batch, 1, 1, 1)
    # Both kinds of matrix for every frame (a few hundred 3x3s): asking whether any frame is a
    # perspective view first would wait for the device.
    matrices = torch.where(
        use_perspective, perspective_matrix(angle, height, width), rotation_scale_matrix(angle, scale, height, width)
    )
    frames = x[:, None].expand(batch, seq_len, *x.shape[1:]).reshape(batch * seq_len, *x.shape[1:])
    frames = warp_homography(frames, matrices.reshape(-1, 3, 3))
    if colour:
        ones = torch.ones_like(hue.reshape(-1, 1, 1))
        tint = hsv_to_rgb(torch.stack([hue.reshape(-1, 1, 1), ones, ones], 1))  # [B*S, 3, 1, 1]
        frames = frames * tint
    return frames.view(batch, seq_len, *frames.shape[1:])


class MNISTSequenceDataModule(pl.LightningDataModule):
    """MNIST (or the stand-in) as transformation sequences; see the module docstring.

    Args:
        root: folder of the MNIST IDX files (or where the stand-in is written).
        synthetic: write and use the scikit-learn digits stand-in (offline; 1500 train, 297 test).
        batch_size: sequences per batch (8 in the reference; 128 images for the 2-D model).
        angle_set, colour_set, scale_set: degrees, degrees (hue = deg * pi / 180 - pi), factors;
            each of length 1 or S. Colour MNIST (3 channels) when colour_set has > 1 value.
        train_sequence, eval_sequence: "single", "dual" or "perspective" for the train split and
            for validation/test (the generalization experiment trains single, evaluates dual).
        pct_val, split_seed: 20 % of the train split held out with a numpy-seeded shuffle.
        val_source: "test" validates on the test split (what the reference evaluates) or "val"
            on the held-out part of the train split.
        eval_seed: fixes the validation/test sequences per index (None: new ones at every
            access, like the reference).
    """

    def __init__(
        self,
        root: str = "datasets/mnist",
        synthetic: bool = False,
        batch_size: int = 8,
        num_workers: int | Literal["auto"] = "auto",
        angle_set: list[float] | None = None,
        colour_set: list[float] | None = None,
        scale_set: list[float] | None = None,
        train_sequence: str = "single",
        eval_sequence: str = "single",
        pct_val: float = 0.2,
        split_seed: int = 1,
        val_source: str = "test",
        eval_seed: int | None = 0,
        pin_memory: bool | Literal["auto"] = "auto",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.root = Path(root)
        # the stand-in has a folder of its own: a run never reads files another run is writing
        self.data_root = synthetic_mnist_folder(root) if synthetic else self.root
        self.synthetic = synthetic
        self.batch_size = batch_size
        self.loader_settings = LoaderSettings(batch_size, num_workers, pin_memory)
        angles = tuple(float(a) for a in (DEFAULT_ANGLES if angle_set is None else angle_set))
        colours = list(DEFAULT_COLOURS if colour_set is None else colour_set)
        scales = tuple(float(s) for s in (DEFAULT_SCALES if scale_set is None else scale_set))
        self.colour = len(colours) > 1
        self.train_spec = SequenceSpec(train_sequence, angles, hue_set(colours), scales)
        self.eval_spec = SequenceSpec(eval_sequence, angles, hue_set(colours), scales)
        if self.train_spec.length != self.eval_spec.length:
            raise ValueError("train and evaluation sequences must have the same length")
        if not 0.0 <= pct_val < 1.0:
            raise ValueError(f"pct_val must be in [0, 1), got {pct_val}")
        if val_source not in ("test", "val"):
            raise ValueError(f"val_source must be 'test' or 'val', got {val_source!r}")
        self.pct_val = pct_val
        self.split_seed = split_seed
        self.val_source = val_source
        self.eval_seed = eval_seed
        # Linked into the model (n_time_steps = sequence length S).
        self.n_time_steps = self.train_spec.length
        self.image_shape = (3 if self.colour else 1, 28, 28)
        self.datasets: dict[str, MNISTSequenceDataset] = {}

    def prepare_data(self) -> None:
        if self.synthetic:
            ensure_synthetic_mnist(self.data_root)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        if self.synthetic:
            self.prepare_data()
        train_images, train_labels = load_mnist_split(self.data_root, "train")
        test_images, test_labels = load_mnist_split(self.data_root, "test")
        if train_images.shape[1:] != (28, 28) or test_images.shape[1:] != (28, 28):
            raise IDXFormatError(
                f"{self.data_root}: MNIST images must be 28x28, found {train_images.shape[1:]} / "
                f"{test_images.shape[1:]}"
            )
        order = np.arange(len(train_images))
        np.random.RandomState(self.split_seed).shuffle(order)
        n_val = int(np.floor(self.pct_val * len(order)))
        val_idx, train_idx = order[:n_val], order[n_val:]
        self.datasets = {
            "train": MNISTSequenceDataset(train_images[train_idx], train_labels[train_idx], self.train_spec, None),
            "val": MNISTSequenceDataset(train_images[val_idx], train_labels[val_idx], self.eval_spec, self.eval_seed),
            "test": MNISTSequenceDataset(test_images, test_labels, self.eval_spec, self.eval_seed),
        }
        log.info(
            "MNIST sequences: %d train, %d held-out, %d test digits", len(train_idx), len(val_idx), len(test_images)
        )

    def _loader(self, split: str, shuffle: bool, drop_last: bool) -> DataLoader:
        dataset = self.datasets[split]
        return build_loader(dataset, self.loader_settings, self.trainer, shuffle=shuffle, drop_last=drop_last)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_source, shuffle=False, drop_last=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False, drop_last=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def predict_samples(self) -> PredictSamples:
        """Predict serves the test split: ``sample_index`` is the digit's row in the t10k IDX files."""
        return PredictSamples("test")

    def on_after_batch_transfer(self, batch: tuple[Tensor, ...], dataloader_idx: int) -> tuple[Tensor, Tensor]:
        digits, labels, params, kind = batch
        return render_sequences(digits, params, kind, self.colour), labels
