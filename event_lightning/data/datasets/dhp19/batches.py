"""Batches of DHP19 windows: counts collated sparse, made dense on the batch's device.

Samples and loader batches carry the count tensors sparse (``counts``: a
:class:`~event_lightning.data.loading.sparse_counts.SparseCounts` of the per-view channel stack
``cnn_input | events | cnn_input_next``, and ``count_parts``: the names, channel counts and
channels per time step of that stack); ``DHP19DataModule.on_after_batch_transfer``
(:mod:`event_lightning.data.datasets.dhp19.datamodule`) turns them into the dense float32 tensors
below on the batch's device (:func:`densify_counts`), so the dense frames never pass through the
DataLoader workers, their queues or the host-to-device copy. What the models get, after the
transfer, is a dict of batch-first tensors (models transpose ``events`` to time-first):

==================  ====================  ==============================================
key                 shape                 content
==================  ====================  ==============================================
cnn_input           [B, P*cnn_bins, H, W] float32 counts (modes cnn, hybrid)
cnn_landmarks       [B, 13, 2]            grid pixels at ``ms_start``
events              [B, T, P, H, W]       float32 counts (modes sequence, hybrid)
cnn_input_next      [B, P*cnn_bins, H, W] next window's CNN frame (hybrid training)
landmarks           [B, L, 13, 2]         grid pixels at the L labelled steps
label_steps         [B, L]                time step of each label
label_3d            [B, L, 13, 3]         Vicon mm (NaN where missing); cnn_label_3d [B, 13, 3]
pixel_scale         [B]                   sensor pixels per grid pixel (= downsample)
projection          [B, 3, 4]             the camera's P; camera_centre [B, 3] mm
camera, ms_start    [B]                   int64
==================  ====================  ==============================================

``P`` is 2 (per-polarity counts) or 1 (``representation: voxel_grid``: the reference's signed,
normalised voxel grid, float32 values rather than counts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch.utils.data import default_collate

from event_lightning.data.loading.sparse_counts import collate_sparse, densify_split

__all__ = ["collate_dhp19", "densify_counts"]

_COUNT_KEYS = ("counts", "count_parts")


def collate_dhp19(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A batch of :class:`DHP19Windows` samples: the sparse counts concatenated
    (:func:`collate_sparse`), ``count_parts`` once, every other entry by ``default_collate``."""
    parts = samples[0]["count_parts"]
    if any(sample["count_parts"] != parts for sample in samples[1:]):
        raise ValueError("collate_dhp19: the samples of a batch have different count_parts (mixed splits?)")
    rest = default_collate([{k: v for k, v in sample.items() if k not in _COUNT_KEYS} for sample in samples])
    return {"counts": collate_sparse([sample["counts"] for sample in samples]), "count_parts": parts, **rest}


def densify_counts(batch: dict[str, Any]) -> dict[str, Any]:
    """``batch`` (from :func:`collate_dhp19`, on its device) with ``counts`` / ``count_parts``
    replaced by the dense float32 tensors they hold, first in the dict as the module docstring
    lists them: ``cnn_input [B, (V,) 2*cnn_bins, H, W]``, ``events [B, (V,) T, 2, H, W]``,
    ``cnn_input_next``. A dict without ``counts`` is returned as it is."""
    if "counts" not in batch:
        return batch
    rest = {key: value for key, value in batch.items() if key not in _COUNT_KEYS}
    counts, parts = batch["counts"], batch["count_parts"]
    dense = densify_split(counts, [channels for _, channels, _ in parts], axis=-3)
    out = {}
    for (key, channels, per_step), block in zip(parts, dense, strict=True):
        if per_step:  # channels are (step, channel of the step) pairs
            block = block.view(*block.shape[:-3], channels // per_step, per_step, *block.shape[-2:])
        out[key] = block
    return out | rest
