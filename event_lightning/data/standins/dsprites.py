"""A procedural dSprites stand-in: the needed rows of the factor grid rendered and written as the dSprites npz.

:func:`render_dsprites` draws the same factor grid with the same value ranges as dSprites (see
:mod:`event_lightning.data.loading.dsprites_npz`); the geometry below is this project's own
definition, not DeepMind's sprites. :func:`write_dsprites_npz` writes rows in the npz format the
real file has, read back by the real reader (``synthetic: true`` of
:class:`~event_lightning.data.datasets.dsprites.DSpritesSequenceDataModule`).

Renderer geometry (pixel (row r, column c) has centre (x, y) = (c + 0.5, r + 0.5)):
centre x = 16 + 32 posX, centre y = 16 + 32 posY (y grows downwards); R = 10 scale pixels;
the shape is turned counter-clockwise (as displayed) by ``orientation`` radians;
square: half side R; ellipse: semi-axes R (along the turned x axis) and R / 2; heart: the
curve (X^2 + Y^2 - 1)^3 - X^2 Y^3 <= 0 with (X, Y) = 1.2 (local x, local y up) / R, its tip
pointing down at orientation 0. Pixels whose centre lies inside are 1, all others 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from event_lightning.data.loading.dsprites_npz import (
    DSPRITES_FILE,
    IMAGE_SIZE,
    LATENT_NAMES,
    LATENT_SIZES,
    SHAPES,
    latent_values,
    subset_grid,
)
from event_lightning.data.standins.folders import ensure_standin, standin_folder

__all__ = [
    "ensure_synthetic_dsprites",
    "render_dsprites",
    "synthetic_dsprites_complete",
    "synthetic_dsprites_folder",
    "write_dsprites_npz",
]

POSITION_OFFSET, POSITION_RANGE, SIZE_PER_SCALE = 16.0, 32.0, 10.0


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


def synthetic_dsprites_complete(root: str | Path) -> bool:
    """Whether ``root`` holds a dSprites npz (the stand-in's, or DeepMind's file there); reads only."""
    return (Path(root) / DSPRITES_FILE).is_file()


def _params(kept: list[np.ndarray]) -> list[list[int]]:
    return [np.asarray(values).tolist() for values in kept]


def synthetic_dsprites_folder(root: str | Path, kept: list[np.ndarray]) -> Path:
    """Where a DataModule reads the stand-in of the factor subset ``kept`` from; writes nothing."""
    return standin_folder(root, "dsprites", _params(kept), synthetic_dsprites_complete)


def ensure_synthetic_dsprites(folder: Path, kept: list[np.ndarray]) -> Path:
    """Render the rows of ``kept`` into ``folder/<DSPRITES_FILE>`` once (atomically, under a lock)."""

    def write(staging: Path) -> None:
        write_dsprites_npz(staging / DSPRITES_FILE, subset_grid(kept))

    return ensure_standin(folder, write, synthetic_dsprites_complete, _params(kept))
