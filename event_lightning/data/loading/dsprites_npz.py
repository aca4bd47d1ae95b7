"""The dSprites npz: its factor grid, and a reader of the subset the TVAE's sequences use.

dSprites (Matthey et al. 2017) renders 2-D shapes at 64x64 over six factors: colour (1 value),
shape (square, ellipse, heart), scale (6 values in [0.5, 1]), orientation (40 values in
[0, 2 pi]), posX and posY (32 values each in [0, 1]).

The reference uses the subset ``classes[start::stride]`` with ``stop = max_transform_len`` per
factor (shape, scale, orientation, posX, posY), default starts [0, 1, 0, 0, 0] and strides
[1, 1, 2, 2, 2]: 3 shapes x 5 scales x 15 orientations x 15 x 15 positions = 50 625 images
(:func:`subset_classes`, :func:`subset_grid`).

Data: DeepMind's ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` (or ``dsprites.npz``) in
``root``; only its ``imgs`` and ``latents_classes`` arrays are read (no pickle), so any npz with
those arrays and the needed rows works -- such as the procedural stand-in of
:mod:`event_lightning.data.standins.dsprites`. The sequences are built in
:mod:`event_lightning.data.datasets.dsprites`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from event_lightning.events.formats.npy import NpzReader

__all__ = [
    "DSPRITES_ALT_FILE",
    "DSPRITES_FILE",
    "DSpritesFormatError",
    "FACTOR_NAMES",
    "IMAGE_SIZE",
    "LATENT_NAMES",
    "LATENT_SIZES",
    "SHAPES",
    "find_dsprites_file",
    "latent_values",
    "load_dsprites_subset",
    "subset_classes",
    "subset_grid",
]

DSPRITES_FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
DSPRITES_ALT_FILE = "dsprites.npz"
LATENT_NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")
LATENT_SIZES = (1, 3, 6, 40, 32, 32)
FACTOR_NAMES = LATENT_NAMES[1:]  # the five factors sequences index (colour has one value)
SHAPES = ("square", "ellipse", "heart")
IMAGE_SIZE = 64


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
    """Images uint8 [n_shape, n_scale, n_orientation, n_posX, n_posY, 64, 64] of the subset ``kept``.

    ``latents_classes`` is read first; ``imgs`` (3 GB in DeepMind's 26 MB file) is then streamed
    and only the subset's rows are kept, so memory holds the subset, never the whole set. Sizes
    are checked before allocating (:class:`~event_lightning.events.formats.npy.NpzReader`).
    """
    path = Path(path)
    with NpzReader(path, error=DSpritesFormatError) as archive:
        missing = archive.missing(("imgs", "latents_classes"))
        if missing:
            raise DSpritesFormatError(f"{path}: missing array(s) {missing}; found {archive.keys}")
        images = archive.header("imgs")
        n_images = images.shape[0] if images.shape else 0
        if images.shape not in ((n_images, IMAGE_SIZE, IMAGE_SIZE), (n_images, 1, IMAGE_SIZE, IMAGE_SIZE)):
            raise DSpritesFormatError(f"{path}: imgs must be [N, 64, 64], found {images.shape}")
        if images.dtype.kind not in "biu":
            raise DSpritesFormatError(f"{path}: imgs must be binary integers (0/1), found dtype {images.dtype}")
        classes = archive.read("latents_classes")
        if classes.shape != (n_images, len(LATENT_SIZES)):
            raise DSpritesFormatError(
                f"{path}: latents_classes must be [{n_images}, 6] (one row per image), found {classes.shape}"
            )
        if not np.issubdtype(classes.dtype, np.integer):
            raise DSpritesFormatError(f"{path}: latents_classes must be integers, found {classes.dtype}")
        if (classes < 0).any() or (classes >= np.asarray(LATENT_SIZES)).any():
            raise DSpritesFormatError(f"{path}: latents_classes out of range; sizes are {LATENT_SIZES}")
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
        unique, position = np.unique(rows, return_inverse=True)
        # The images of the requested subset are what the caller asked for; the file's budget covers the rest.
        archive.budget += len(unique) * IMAGE_SIZE * IMAGE_SIZE * images.dtype.itemsize
        images = archive.read("imgs", rows=unique).reshape(len(unique), IMAGE_SIZE, IMAGE_SIZE)
    if images.size and images.max() > 1:
        raise DSpritesFormatError(f"{path}: imgs must be binary (0/1), found values up to {int(images.max())}")
    return images[position].astype(np.uint8).reshape(*(len(k) for k in kept), IMAGE_SIZE, IMAGE_SIZE)
