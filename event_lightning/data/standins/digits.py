"""scikit-learn's 8x8 handwritten digits drawn the way MNIST draws its digits.

MNIST (LeCun et al. 1998) scales each digit's ink into a 20x20 box, anti-aliased, and centres
its centre of mass in a 28x28 canvas; over the canvas its pixels have mean 0.1307 and standard
deviation 0.3081. :func:`mnist_style_digits` gives the 1797 digits that ship with scikit-learn
(nothing downloads) that box and stroke; the N-MNIST stand-in moves them in front of its
simulated sensor, the MNIST stand-in writes them as IDX files.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import zoom

__all__ = ["MNIST_BOX_PX", "MNIST_CANVAS_PX", "STROKE_RAMP", "mnist_canvas", "mnist_style_digits"]

MNIST_CANVAS_PX, MNIST_BOX_PX = 28, 20
# Ink below the first value becomes background, above the second full stroke, linear between: turns
# the cubic upscale's soft 2.5-pixel blur into MNIST's anti-aliased pen (mean ink 0.128 and standard
# deviation 0.311 over the 28x28 canvas, MNIST: 0.1307 and 0.3081).
STROKE_RAMP = (0.45, 0.8)


def mnist_style_digits(images: np.ndarray, box: int) -> tuple[np.ndarray, np.ndarray]:
    """8x8 digits drawn like MNIST's: ``(ink [M, box, box] in [0, 1], centre of mass [M, 2] (x, y))``.

    Cubic-spline upscale of ``images`` ``[M, 8, 8]`` (ink in [0, 1]) to ``box x box`` pixels,
    then :data:`STROKE_RAMP`, MNIST's stroke width and sharpness. The centre of mass is in the
    box's pixel-index coordinates; MNIST puts it at the centre of its 28x28 canvas.
    """
    factor = box / images.shape[-1]
    smooth = zoom(images, (1.0, factor, factor), order=3, grid_mode=True, mode="nearest")
    low, high = STROKE_RAMP
    ink = np.clip((smooth - low) / (high - low), 0.0, 1.0)
    index = np.arange(box, dtype=np.float64)
    mass = ink.sum(axis=(1, 2))
    centre = np.stack([(ink.sum(axis=1) @ index) / mass, (ink.sum(axis=2) @ index) / mass], axis=1)
    return ink, centre


def mnist_canvas(ink: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """``[M, 28, 28]``: each box of ``ink`` ``[M, S, S]`` placed with its centre of mass (``[M, 2]``,
    x, y) nearest the canvas centre, whole pixels, the box kept inside the canvas."""
    count, size = ink.shape[0], ink.shape[-1]
    corner = np.clip(np.rint((MNIST_CANVAS_PX - 1) / 2 - centre), 0, MNIST_CANVAS_PX - size).astype(np.int64)
    # every box pixel's flat canvas index: one scatter for all digits
    rows = corner[:, 1, None, None] + np.arange(size)[None, :, None]
    cols = corner[:, 0, None, None] + np.arange(size)[None, None, :]
    canvas = np.zeros((count, MNIST_CANVAS_PX * MNIST_CANVAS_PX), dtype=ink.dtype)
    np.put_along_axis(canvas, (rows * MNIST_CANVAS_PX + cols).reshape(count, -1), ink.reshape(count, -1), axis=1)
    return canvas.reshape(count, MNIST_CANVAS_PX, MNIST_CANVAS_PX)
