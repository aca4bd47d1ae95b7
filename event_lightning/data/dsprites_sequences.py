"""dSprites transformation sequences for the Topographic VAE.

dSprites (Matthey et al. 2017) renders 2-D shapes at 64x64 over six factors: colour (1 value),
shape (square, ellipse, heart), scale (6 values in [0.5, 1]), orientation (40 values in
[0, 2 pi]), posX and posY (32 values each in [0, 1]).

The reference uses the subset ``classes[start::stride]`` with ``stop = max_transform_len`` per
factor (shape, scale, orientation, posX, posY), default starts [0, 1, 0, 0, 0] and strides
[1, 1, 2, 2, 2]: 3 shapes x 5 scales x 15 orientations x 15 x 15 positions = 50 625 images.
A sequence starts from one subset image and steps one transformed factor (posX, posY,
orientation or scale, chosen uniformly) one subset index per frame, cyclically; its items are
(images uint8 [S, 1, 64, 64], factor indices int64 [S, 5] in the subset's index space).

Data: DeepMind's ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` (or ``dsprites.npz``) in
``root``; only its ``imgs`` and ``latents_classes`` arrays are read (no pickle), so any npz with
those arrays and the needed rows works. ``synthetic: true`` renders the needed rows with
:func:`render_dsprites` (same factor grid and value ranges; the geometry below is this
project's own definition, not DeepMind's sprites) and writes them in that npz format first.

Renderer geometry (pixel (row r, column c) has centre (x, y) = (c + 0.5, r + 0.5)):
centre x = 16 + 32 posX, centre y = 16 + 32 posY (y grows downwards); R = 10 scale pixels;
the shape is turned counter-clockwise (as displayed) by ``orientation`` radians;
square: half side R; ellipse: semi-axes R (along the turned x axis) and R / 2; heart: the
curve (X^2 + Y^2 - 1)^3 - X^2 Y^3 <= 0 with (X, Y) = 1.2 (local x, local y up) / R, its tip
pointing down at orientation 0. Pixels whose centre lies inside are 1, all others 0.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

log = logging.getLogger(__name__)

DSPRITES_FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
DSPRITES_ALT_FILE = "dsprites.npz"
LATENT_NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")
LATENT_SIZES = (1, 3, 6, 40, 32, 32)
FACTOR_NAMES = LATENT_NAMES[1:]  # the five factors sequences index (colour has one value)
SHAPES = ("square", "ellipse", "heart")
IMAGE_SIZE = 64
POSITION_OFFSET, POSITION_RANGE, SIZE_PER_SCALE = 16.0, 32.0, 10.0


class DSpritesFormatError(ValueError):
    """A dSprites npz that lacks the arrays or rows the sequences need."""


def latent_values(classes: np.ndarray) -> np.ndarray:
    """Factor values [N, 6] (colour 1, shape 1..3, scale, orientation rad, posX, posY) of class indices [N, 6]."""
    classes = np.asarray(classes)
    grids = [
        np.ones(1),
        np.arange(1.0, 4.0),
        np.linspace(0.5, 1.0, LATENT_SIZES[2]),
        np.linspace(0.0, 2 * np.pi, LATENT_SIZES[3]),
        np.linspace(0.0, 1.0, LATENT_SIZES[4]),
        np.linspace(0.0, 1.0, LATENT_SIZES[5]),
    ]
    return np.stack([grid[classes[:, i]] for i, grid in enumerate(grids)], -1)


def render_dsprites(classes: np.ndarray, chunk: int = 512) -> np.ndarray:
    """Binary 64x64 images uint8 [N, 64, 64] of factor class indices [N, 6] (see the module docstring)."""
    classes = np.asarray(classes, dtype=np.int64)
    if classes.ndim != 2 or classes.shape[1] != len(LATENT_SIZES):
        raise ValueError(f"expected class indices [N, 6], got {classes.shape}")
    if (classes < 0).any() or (classes >= np.asarray(LATENT_SIZES)).any():
        raise ValueError(f"class indices out of range; sizes are {LATENT_SIZES}")
    out = np.empty((len(classes), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    centres = (np.arange(IMAGE_SIZE) + 0.5).astype(np.float32)
    for shape_class, shape_name in enumerate(SHAPES):
        rows = np.flatnonzero(classes[:, 1] == shape_class)
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            values = latent_values(classes[part]).astype(np.float32)
            scale, angle, pos_x, pos_y = (values[:, i, None, None] for i in range(2, 6))
            dx = centres[None, None, :] - (POSITION_OFFSET + POSITION_RANGE * pos_x)
            dy_up = (POSITION_OFFSET + POSITION_RANGE * pos_y) - centres[None, :, None]
            # Local coordinates in units of R: undo the counter-clockwise turn of the shape.
            cos, sin, radius = np.cos(angle), np.sin(angle), SIZE_PER_SCALE * scale
            lx = (cos * dx + sin * dy_up) / radius
            ly = (cos * dy_up - sin * dx) / radius
            if shape_name == "square":
                inside = (np.abs(lx) <= 1.0) & (np.abs(ly) <= 1.0)
            elif shape_name == "ellipse":
                inside = lx**2 + 4.0 * ly**2 <= 1.0
            else:
                hx, hy = 1.2 * lx, 1.2 * ly
                inside = (hx**2 + hy**2 - 1.0) ** 3 - hx**2 * hy**3 <= 0.0
            out[part] = inside
    return out


def subset_classes(max_transform_len: int, starts: list[int], strides: list[int]) -> list[np.ndarray]:
    """Class indices kept per factor (shape, scale, orientation, posX, posY): range(start, min(stop, size), stride)."""
    if len(starts) != 5 or len(strides) != 5:
        raise ValueError(
            f"factor_starts and factor_strides need 5 entries (shape, scale, orientation, posX, posY), "
            f"got {starts} and {strides}"
        )
    kept = [
        np.arange(start, min(max_transform_len, size), stride)
        for start, stride, size in zip(starts, strides, LATENT_SIZES[1:], strict=True)
    ]
    for name, values in zip(FACTOR_NAMES, kept, strict=True):
        if values.size == 0:
            raise ValueError(f"the dSprites subset keeps no {name} values; check factor_starts / max_transform_len")
    return kept


def subset_grid(kept: list[np.ndarray]) -> np.ndarray:
    """All class index rows [M, 6] of the subset, in C order of (shape, scale, orientation, posX, posY)."""
    mesh = np.meshgrid(*kept, indexing="ij")
    rows = np.stack([m.ravel() for m in mesh], -1)
    return np.concatenate([np.zeros((len(rows), 1), dtype=np.int64), rows], 1)


def write_dsprites_npz(path: str | Path, classes: np.ndarray, images: np.ndarray | None = None) -> Path:
    """Write a dSprites-format npz (imgs, latents_classes, latents_values, metadata) of the given rows."""
    path = Path(path)
    images = render_dsprites(classes) if images is None else images
    metadata = {
        "latents_names": LATENT_NAMES,
        "latents_sizes": np.asarray(LATENT_SIZES),
        "description": "event_lightning procedural stand-in for dSprites (subset of rows)",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        imgs=images.astype(np.uint8),
        latents_classes=np.asarray(classes, dtype=np.int64),
        latents_values=latent_values(classes),
        metadata=np.array(metadata, dtype=object),
    )
    return path


def find_dsprites_file(root: str | Path) -> Path:
    root = Path(root)
    for name in (DSPRITES_FILE, DSPRITES_ALT_FILE):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(
        f"dSprites not found: put DeepMind's {DSPRITES_FILE} (github.com/deepmind/dsprites-dataset) "
        f"in {root}, or set synthetic: true for the procedural stand-in"
    )


def load_dsprites_subset(path: str | Path, kept: list[np.ndarray]) -> np.ndarray:
    """Images uint8 [n_shape, n_scale, n_orientation, n_posX, n_posY, 64, 64] of the subset ``kept``."""
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as err:  # zipfile, zlib and numpy's header parser raise many types
        raise DSpritesFormatError(f"{path}: not a readable npz archive ({err})") from err
    with archive:
        missing = [key for key in ("imgs", "latents_classes") if key not in archive.files]
        if missing:
            raise DSpritesFormatError(f"{path}: missing array(s) {missing}; found {archive.files}")
        try:
            images, classes = archive["imgs"], archive["latents_classes"]
        except Exception as err:  # a corrupt member raises zlib.error, EOFError, BadZipFile, ...
            raise DSpritesFormatError(f"{path}: cannot read imgs / latents_classes ({err})") from err
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DSpritesFormatError(f"{path}: imgs must be [N, 64, 64], found {images.shape}")
    if classes.ndim != 2 or classes.shape != (len(images), len(LATENT_SIZES)):
        raise DSpritesFormatError(
            f"{path}: latents_classes must be [{len(images)}, 6] (one row per image), found {classes.shape}"
        )
    if not np.issubdtype(classes.dtype, np.integer):
        raise DSpritesFormatError(f"{path}: latents_classes must be integers, found {classes.dtype}")
    if (classes < 0).any() or (classes >= np.asarray(LATENT_SIZES)).any():
        raise DSpritesFormatError(f"{path}: latents_classes out of range; sizes are {LATENT_SIZES}")
    if images.size and images.max() > 1:
        raise DSpritesFormatError(f"{path}: imgs must be binary (0/1), found values up to {int(images.max())}")
    table = np.full(int(np.prod(LATENT_SIZES)), -1, dtype=np.int64)
    table[np.ravel_multi_index(classes.T, LATENT_SIZES)] = np.arange(len(classes))
    wanted = subset_grid(kept)
    rows = table[np.ravel_multi_index(wanted.T, LATENT_SIZES)]
    if (rows < 0).any():
        first = wanted[np.argmax(rows < 0)].tolist()
        raise DSpritesFormatError(
            f"{path}: {int((rows < 0).sum())} of the {len(rows)} images of the requested subset are missing "
            f"(first: class indices {first}); use the full dSprites file or rewrite the stand-in for this subset"
        )
    return images[rows].astype(np.uint8).reshape(*(len(k) for k in kept), IMAGE_SIZE, IMAGE_SIZE)


class DSpritesSequenceDataset(Dataset):
    """Sequences of ``seq_len`` frames over a factor-grid of images [F1..F5, 64, 64].

    Item index = the start image (C-order over the grid); the transformed factor is drawn
    uniformly from ``transform_factors`` (indices into shape, scale, orientation, posX, posY);
    frame t has that factor's index (v0 + t) mod size. ``seed=None``: new draws at every
    access; an int fixes them per index (and, with ``n_items``, picks that many start images).
    """

    def __init__(
        self,
        grid: np.ndarray,
        seq_len: int,
        transform_factors: list[int],
        seed: int | None = None,
        n_items: int | None = None,
    ) -> None:
        self.grid = torch.from_numpy(np.ascontiguousarray(grid))
        self.sizes = tuple(grid.shape[:5])
        self.seq_len = seq_len
        self.transform_factors = list(transform_factors)
        self.seed = seed
        total = int(np.prod(self.sizes))
        if n_items is None or n_items >= total:
            self.starts = np.arange(total)
        else:
            self.starts = np.sort(np.random.default_rng(seed).choice(total, size=n_items, replace=False))

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        if self.seed is None:
            choice = int(torch.randint(len(self.transform_factors), (1,)).item())
        else:
            choice = int(np.random.default_rng([self.seed, index]).integers(len(self.transform_factors)))
        factor = self.transform_factors[choice]
        start = np.array(np.unravel_index(int(self.starts[index]), self.sizes))
        factors = np.repeat(start[None], self.seq_len, axis=0)
        factors[:, factor] = (start[factor] + np.arange(self.seq_len)) % self.sizes[factor]
        factors = torch.from_numpy(factors)
        images = self.grid[tuple(factors.T)]  # [S, 64, 64]
        return images[:, None], factors


class DSpritesSequenceDataModule(pl.LightningDataModule):
    """dSprites (or the stand-in) as single-factor transformation sequences.

    Args:
        root: folder of the dSprites npz (or where the stand-in is written).
        synthetic: render the subset procedurally and write it as an npz first (offline).
        batch_size: sequences per batch (8 in the reference).
        seq_len: frames per sequence S (15).
        seq_transforms: the factors a sequence may transform.
        max_transform_len, factor_starts, factor_strides: the subset (see the module docstring).
        n_val_sequences: fixed validation sequences (start images and factors drawn with
            ``eval_seed``; the reference has no validation set, it reports training-epoch numbers).
    A batch reaching the model: (x [B, S, 1, 64, 64] float, factor indices [B, S, 5]).
    """

    def __init__(
        self,
        root: str = "datasets/dsprites",
        synthetic: bool = False,
        batch_size: int = 8,
        num_workers: int = 0,
        seq_len: int = 15,
        seq_transforms: list[str] | None = None,
        max_transform_len: int = 30,
        factor_starts: list[int] | None = None,
        factor_strides: list[int] | None = None,
        n_val_sequences: int = 1024,
        eval_seed: int = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.root = Path(root)
        self.synthetic = synthetic
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        transforms = list(seq_transforms or ["posX", "posY", "orientation", "scale"])
        unknown = [t for t in transforms if t not in FACTOR_NAMES]
        if unknown or not transforms:
            raise ValueError(f"seq_transforms {transforms}: each must be one of {FACTOR_NAMES}")
        self.transform_factors = [FACTOR_NAMES.index(t) for t in transforms]
        self.kept = subset_classes(
            max_transform_len, factor_starts or [0, 1, 0, 0, 0], factor_strides or [1, 1, 2, 2, 2]
        )
        self.n_val_sequences = n_val_sequences
        self.eval_seed = eval_seed
        self.n_time_steps = seq_len
        self.image_shape = (1, IMAGE_SIZE, IMAGE_SIZE)
        self.factor_names = list(FACTOR_NAMES)
        self.datasets: dict[str, DSpritesSequenceDataset] = {}

    def prepare_data(self) -> None:
        if self.synthetic and not (self.root / DSPRITES_FILE).is_file():
            log.info("writing the procedural dSprites stand-in to %s", self.root / DSPRITES_FILE)
            write_dsprites_npz(self.root / DSPRITES_FILE, subset_grid(self.kept))

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        if self.synthetic:
            self.prepare_data()
        grid = load_dsprites_subset(find_dsprites_file(self.root), self.kept)
        seq_len = self.n_time_steps
        self.datasets = {"train": DSpritesSequenceDataset(grid, seq_len, self.transform_factors)}
        if self.n_val_sequences > 0:
            self.datasets["val"] = DSpritesSequenceDataset(
                grid, seq_len, self.transform_factors, seed=self.eval_seed, n_items=self.n_val_sequences
            )
        log.info("dSprites sequences: %d start images, grid %s", grid[..., 0, 0].size, grid.shape[:5])

    def _loader(self, split: str, shuffle: bool, drop_last: bool) -> DataLoader:
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("val", shuffle=False, drop_last=False) if "val" in self.datasets else []

    def predict_dataloader(self) -> DataLoader | list:
        return self.val_dataloader()

    def on_after_batch_transfer(self, batch: tuple[Tensor, Tensor], dataloader_idx: int) -> tuple[Tensor, Tensor]:
        images, factors = batch
        return images.float(), factors
