"""An offline MNIST stand-in: scikit-learn's 1797 8x8 handwritten digits as the four MNIST IDX files.

The digits are drawn like MNIST's (cubic upscale into a 20x20 box, MNIST's stroke ink, centred by
mass in 28x28: :mod:`~event_lightning.data.standins.digits`) and written with
:func:`~event_lightning.data.loading.mnist_idx.write_idx` where the real files go, so
:mod:`event_lightning.data.datasets.mnist` reads them with the real reader (``synthetic: true``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from event_lightning.data.loading.mnist_idx import MNIST_FILES, write_idx
from event_lightning.data.standins.digits import MNIST_BOX_PX, mnist_canvas, mnist_style_digits
from event_lightning.data.standins.folders import ensure_standin, standin_folder

__all__ = [
    "ensure_synthetic_mnist",
    "synthetic_digits",
    "synthetic_mnist_complete",
    "synthetic_mnist_folder",
    "write_synthetic_mnist",
]

_STANDIN = {"images": "sklearn load_digits, MNIST-style 20x20 box centred by mass in 28x28", "n_test": 297}


def synthetic_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 8x8 digits drawn like MNIST's (:mod:`~event_lightning.data.standins.digits`): the ink
    in a 20x20 box centred by mass in 28x28, MNIST's stroke; ``(images [1797, 28, 28] uint8, labels uint8)``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    canvas = mnist_canvas(*mnist_style_digits(digits.images / 16.0, MNIST_BOX_PX))
    return np.rint(canvas * 255).astype(np.uint8), digits.target.astype(np.uint8)


def write_synthetic_mnist(root: str | Path, n_test: int = 297) -> Path:
    """Write the stand-in digits as the four MNIST IDX files in ``root/MNIST/raw`` (train: the rest)."""
    folder = Path(root) / "MNIST" / "raw"
    images, labels = synthetic_digits()
    parts = {"train": slice(0, len(images) - n_test), "test": slice(len(images) - n_test, None)}
    for split, (image_name, label_name) in MNIST_FILES.items():
        write_idx(folder / image_name, images[parts[split]])
        write_idx(folder / label_name, labels[parts[split]])
    return folder


def synthetic_mnist_complete(root: str | Path) -> bool:
    """Whether ``root/MNIST/raw`` holds the four IDX files (the stand-in's, or a real copy there); reads only."""
    folder = Path(root) / "MNIST" / "raw"
    return all((folder / name).is_file() for pair in MNIST_FILES.values() for name in pair)


def synthetic_mnist_folder(root: str | Path) -> Path:
    """Where a DataModule reads the stand-in from (``root`` or ``root/synthetic-mnist-<key>``); writes nothing."""
    return standin_folder(root, "mnist", _STANDIN, synthetic_mnist_complete)


def ensure_synthetic_mnist(folder: Path) -> Path:
    """Write the stand-in into ``folder`` (from :func:`synthetic_mnist_folder`) unless it is there."""
    return ensure_standin(folder, write_synthetic_mnist, synthetic_mnist_complete, _STANDIN)
