"""Splitting a big batch of images into chunks for CPU convolutions.

The pose SNN runs every convolution once per window on ``T * B`` images. On the CPU, oneDNN's
backward pass is up to 2x slower per image once the input (the size of its gradient) outgrows a
few MiB: the up3 phase convolutions of the pose SNN bench (20 images of 64 x 35 x 35, 6.3 MiB)
take 14.8 ms for the input gradient in one call and 6.9 ms in two calls of 10 images (forward
and weight gradient unchanged); down1 (20 x 16 x 64 x 64) drops from 23 to 18 ms forward and
backward. Inputs of up to :data:`CHUNK_BYTES` run in one call (smaller chunks only add calls).
On an accelerator every batch runs in one call. The layers chunk inside their forward pass
(:class:`ChunkedConv2d`, :class:`~event_lightning.nn.pose.upsample_conv.Upsample2xConv2d`), so
their hooks still see one call per window.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = ["CHUNK_BYTES", "ChunkedConv2d", "chunked_conv", "image_chunks"]

CHUNK_BYTES = 4 * 2**20
"""Largest CPU convolution input, in bytes, that runs as one call."""


def image_chunks(x: Tensor) -> int:
    """How many images of ``x [N, C, H, W]`` one CPU convolution call takes (``N`` off the CPU)."""
    images = x.shape[0]
    if x.device.type != "cpu" or images <= 1:
        return max(images, 1)
    calls = math.ceil(x.numel() * x.element_size() / CHUNK_BYTES)
    return math.ceil(images / calls)


def chunked_conv(conv: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``conv(x)`` for ``x [N, C, H, W]``, called on chunks of :func:`image_chunks` images."""
    size = image_chunks(x)
    if size >= x.shape[0]:
        return conv(x)
    return torch.cat([conv(chunk) for chunk in x.split(size)])


class ChunkedConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (same parameters, state-dict keys and hooks, which see the whole batch)
    whose forward pass runs on chunks of images (:func:`chunked_conv`)."""

    def forward(self, x: Tensor) -> Tensor:
        return chunked_conv(super().forward, x)
