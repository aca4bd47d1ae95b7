"""An offline MNIST stand-in: scikit-learn's 1797 8x8 handwritten digits as the four MNIST IDX files.

The digits are upscaled (bilinear) to 20x20 and centred in 28x28, like MNIST's, and written with
:func:`~event_lightning.data.loading.mnist_idx.write_idx` where the real files go, so
:mod:`event_lightning.data.datasets.mnist` reads them with the real reader (``synthetic: true``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from event_lightning.data.loading.mnist_idx import MNIST_FILES, write_idx
from event_lightning.data.standins.folders import ensure_standin, standin_folder

__all__ = [
    "ensure_synthetic_mnist",
    "synthetic_digits",
    "synthetic_mnist_complete",
    "synthetic_mnist_folder",
    "write_synthetic_mnist",
]

_STANDIN = {"images": "sklearn load_digits, 20x20 in 28x28", "n_test": 297}


def synthetic_digits(size: int = 28, box: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 8x8 digits, upscaled (bilinear) to box x box and centred in size x size, uint8."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]
    large = F.interpolate(small, size=(box, box), mode="bilinear", align_corners=False).clamp(0, 1)
    margin = (size - box) // 2
    large = F.pad(large, (margin, size - box - margin, margin, size - box - margin))
    return (large[:, 0] * 255).round().to(torch.uint8).numpy(), digits.target.astype(np.uint8)


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
