"""Count stacks carried sparse through the DataLoader and made dense on the device.

Event count frames are mostly zeros: a 100 ms DHP19 window of ten 2x256x256 bins is 1.3 M cells
of which a few ten thousand are non-zero. Samples therefore carry only the non-zero cells (a flat
``int32`` index and the count in the narrowest integer type) and a DataModule's
``on_after_batch_transfer`` scatters a whole batch into a float32 tensor on the device in one
``index_put_``, so the dense frames never pass through the workers, the inter-process queue or
the host-to-device copy.

* :func:`to_sparse` -- one integer count array -> ``(flat_index int32 [nnz], values [nnz])``;
* :class:`SparseCounts` -- those entries for ``B`` stacks of one shape (a sample is ``B = 1``);
* :func:`to_records` / :func:`from_records` -- the entries as one structured array (5 or 6 bytes
  an entry), the form a :class:`~event_lightning.data.loading.frame_cache.FrameCache` stores;
* :func:`collate_sparse` -- the samples of a batch into one :class:`SparseCounts`;
* :func:`densify` -- :class:`SparseCounts` -> float32 ``[B, *shape]`` on the entries' device;
  :func:`densify_split` -- the same cut along one axis into contiguous parts (e.g. the CNN frame
  and the event bins of one channel stack).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "SparseCounts",
    "collate_sparse",
    "densify",
    "densify_split",
    "from_records",
    "sparse_counts",
    "to_records",
    "to_sparse",
]

_INT16_MAX = int(np.iinfo(np.int16).max)
_INT32_MAX = int(np.iinfo(np.int32).max)
_NUMPY_FLOATS = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16}


def to_sparse(counts: np.ndarray, name: str = "counts") -> tuple[np.ndarray, np.ndarray]:
    """The non-zero cells of an integer count array (or of a float32 array, e.g. a voxel grid).

    Args:
        counts: integer counts of any shape (e.g. ``[V, C, H, W]``), >= 0 and <= 32767; or
            float32 values of any sign.
        name: what the counts are, for error messages.

    Returns:
        ``(flat_index, values)``: ``int32 [nnz]`` positions in ``counts.ravel()`` (C order,
        increasing) and ``[nnz]`` counts, ``uint8`` when every count is <= 255, else ``int16``
        (float32 values stay float32).

    Raises:
        TypeError: ``counts`` is neither an integer nor a float32 array.
        ValueError: a count is negative or above 32767, or the array has more cells than int32 indexes.
    """
    if counts.dtype.kind not in "iub" and counts.dtype != np.float32:
        raise TypeError(f"to_sparse: {name} must be an integer count or float32 array; found dtype {counts.dtype}")
    if counts.size > _INT32_MAX:
        raise ValueError(f"to_sparse: {name} has {counts.size} cells; int32 indexes at most {_INT32_MAX}")
    flat = np.asarray(counts).reshape(-1)
    index = _flatnonzero(flat)
    values = flat[index]
    if counts.dtype == np.float32:
        return index.astype(np.int32), values
    if len(values):
        low, high = int(values.min()), int(values.max())
        if low < 0:
            raise ValueError(f"to_sparse: {name} must be counts >= 0; found {low}")
        if high > _INT16_MAX:
            raise ValueError(
                f"to_sparse: {name} has a count of {high} in one cell; at most {_INT16_MAX} (int16) is supported "
                "(a smaller downsample factor or shorter bins keep counts lower)"
            )
        dtype = np.uint8 if high <= np.iinfo(np.uint8).max else np.int16
    else:
        dtype = np.uint8
    return index.astype(np.int32), values.astype(dtype)


def _flatnonzero(flat: np.ndarray) -> np.ndarray:
    """``np.flatnonzero(flat)`` for a 1-D array, about 3x faster when most cells are zero.

    The cells are scanned as 8-byte words (wide integers first become a one-byte mask): only the
    few non-zero words are looked at cell by cell.
    """
    if flat.itemsize > 2:
        return _flatnonzero((flat != 0).view(np.uint8))
    per_word = 8 // flat.itemsize
    if flat.nbytes % 8 or not flat.flags.c_contiguous or flat.ctypes.data % 8:
        return np.flatnonzero(flat)
    words = np.flatnonzero(flat.view(np.uint64))
    candidates = (words[:, None] * per_word + np.arange(per_word)).reshape(-1)
    return candidates[flat[candidates] != 0]


class SparseCounts(NamedTuple):
    """The non-zero cells of ``B`` count stacks of one shape (a single sample has ``B = 1``).

    Attributes:
        index: ``int32 [N]`` flat position of each entry inside ITS stack (C order of ``shape``);
            the entries of stack ``b`` follow those of stack ``b - 1``.
        values: ``uint8`` or ``int16 [N]`` counts (float32 for float stacks such as voxel grids).
        nnz: ``int64 [B]`` entries per stack (``nnz.sum() == N``).
        shape: the shape of one stack, e.g. ``(C, H, W)`` or ``(V, C, H, W)``.
    """

    index: Tensor
    values: Tensor
    nnz: Tensor
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        """Bytes of the three tensors (what a loader moves for these stacks)."""
        return sum(t.element_size() * t.numel() for t in (self.index, self.values, self.nnz))

    @property
    def dense_nbytes(self) -> int:
        """Bytes of the float32 ``[B, *shape]`` tensor :func:`densify` builds."""
        return 4 * len(self.nnz) * int(np.prod(self.shape))


def sparse_counts(counts: np.ndarray, name: str = "counts") -> SparseCounts:
    """One count stack (any integer array) as a :class:`SparseCounts` with ``B = 1`` (see :func:`to_sparse`)."""
    index, values = to_sparse(counts, name)
    return SparseCounts(
        torch.from_numpy(index),
        torch.from_numpy(values),
        torch.tensor([len(index)], dtype=torch.int64),
        tuple(int(n) for n in counts.shape),
    )


def to_records(counts: np.ndarray, name: str = "counts") -> np.ndarray:
    """The non-zero cells of ``counts`` (see :func:`to_sparse`) as one structured array ``[nnz]``
    with fields ``index`` (int32) and ``count`` (uint8 or int16; float32 for a float stack), packed:
    5, 6 or 8 bytes an entry."""
    index, values = to_sparse(counts, name)
    records = np.empty(len(index), dtype=[("index", np.int32), ("count", values.dtype)])
    records["index"], records["count"] = index, values
    return records


def from_records(records: np.ndarray, shape: Sequence[int]) -> SparseCounts:
    """:func:`to_records` entries of one count stack of ``shape`` as a :class:`SparseCounts` (``B = 1``).

    Raises:
        ValueError: ``records`` lacks the ``index`` / ``count`` fields, or an index is outside ``shape``.
    """
    if records.dtype.names != ("index", "count"):
        raise ValueError(f"from_records: expected fields ('index', 'count'); found dtype {records.dtype}")
    index = records["index"].copy()  # a copy: records may be a read-only memory map
    if len(index) and (int(index.min()) < 0 or int(index.max()) >= int(np.prod(shape))):
        raise ValueError(
            f"from_records: flat indices {index.min()}..{index.max()} leave a stack of shape {tuple(shape)}"
        )
    return SparseCounts(
        torch.from_numpy(index),
        torch.from_numpy(records["count"].copy()),
        torch.tensor([len(index)], dtype=torch.int64),
        tuple(int(n) for n in shape),
    )


def collate_sparse(items: Sequence[SparseCounts]) -> SparseCounts:
    """Concatenate the entries of ``items`` (stacks of one shape) in order: ``B = sum of their B``.

    Values are widened to int16 when the items mix uint8 and int16 (to float32 when any is float32).
    """
    if not items:
        raise ValueError("collate_sparse: no items to collate")
    shape = items[0].shape
    for item in items[1:]:
        if item.shape != shape:
            raise ValueError(
                f"collate_sparse: count stacks of one batch must share a shape; found {shape} and {item.shape}"
            )
    dtypes = {item.values.dtype for item in items}
    dtype = next((d for d in (torch.float32, torch.int16) if d in dtypes), torch.uint8)
    return SparseCounts(
        torch.cat([item.index for item in items]),
        torch.cat([item.values.to(dtype) for item in items]),
        torch.cat([item.nnz for item in items]),
        shape,
    )


def _zeros(size: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``torch.zeros(size)``; on the CPU from numpy's calloc, whose pages the kernel zeroes lazily:
    a batch's buffer is large (126 MB for 8 hybrid DHP19 windows) and mostly never written, and
    ``torch.zeros`` would write every page of it first (about as long as building the batch)."""
    if device.type == "cpu" and dtype in _NUMPY_FLOATS:
        return torch.from_numpy(np.zeros(size, dtype=_NUMPY_FLOATS[dtype]))
    return torch.zeros(size, dtype=dtype, device=device)


def _part_tables(sizes: Sequence[int], device: torch.device) -> tuple[Tensor, Tensor]:
    """Per channel of the cut axis: the length of its part and the part's first channel (int64).

    Filled on ``device`` from the Python sizes, so no host-built table is copied over the bus.
    """
    length = torch.empty(sum(sizes), dtype=torch.int64, device=device)
    first = torch.empty_like(length)
    start = 0
    for n in sizes:
        length[start : start + n] = n
        first[start : start + n] = start
        start += n
    return length, first


def densify(counts: SparseCounts, dtype: torch.dtype = torch.float32) -> Tensor:
    """``[B, *shape]`` dense counts on the device of ``counts.index`` (one scatter, no host sync).

    Args:
        counts: the sparse stacks (their tensors on the target device).
        dtype: of the result (float32: what the networks take).
    """
    return densify_split(counts, [counts.shape[0]], axis=0, dtype=dtype)[0]


def densify_split(
    counts: SparseCounts, sizes: Sequence[int], axis: int = 0, dtype: torch.dtype = torch.float32
) -> list[Tensor]:
    """The dense stacks cut along one axis into parts, each a contiguous tensor, in one scatter.

    For stacks of shape ``(*pre, C, *post)`` (``C`` at ``axis``) and ``sizes = (n_0, n_1, ...)``
    summing to ``C``, part ``k`` is ``[B, *pre, n_k, *post]`` and equals
    ``densify(counts)[..., o_k : o_k + n_k, ...]`` (``o_k`` = the sizes before it); the parts are
    views of one buffer, written directly in their own layout so no part is copied afterwards.

    Args:
        counts: the sparse stacks (their tensors on the target device).
        sizes: lengths of the parts along ``axis``.
        axis: the axis of one stack's shape that is cut (negative counts from the end).
        dtype: of the result (float32: what the networks take).
    """
    index, values, nnz, shape = counts
    axis = axis % len(shape)
    if sum(sizes) != shape[axis] or any(n <= 0 for n in sizes):
        raise ValueError(f"densify_split: positive sizes {list(sizes)} must sum to axis {axis} of {shape}")
    device = index.device
    batch = len(nnz)
    outer, channels, inner = int(np.prod(shape[:axis])), shape[axis], int(np.prod(shape[axis + 1 :]))
    # The stack of each entry, without reading nnz back to the host (output_size is known).
    stack = torch.repeat_interleave(torch.arange(batch, device=device), nnz.to(device), output_size=index.numel())
    flat = index.to(torch.int64)
    if len(sizes) == 1:
        target = stack * (outer * channels * inner) + flat
    else:
        rows = torch.div(flat, channels * inner, rounding_mode="floor")  # position in shape[:axis]
        within = flat - rows * (channels * inner)
        channel = torch.div(within, inner, rounding_mode="floor")
        cell = within - channel * inner  # position in shape[axis + 1:]
        length, first = _part_tables(sizes, device)
        base = batch * outer * inner * first  # where each channel's part starts in the buffer
        target = base[channel] + ((stack * outer + rows) * length[channel] + channel - first[channel]) * inner + cell
    dense = _zeros(batch * outer * channels * inner, dtype, device)
    dense.index_put_((target,), values.to(dtype))
    parts, start = [], 0
    for n in sizes:
        count = batch * outer * n * inner
        parts.append(dense[start : start + count].view(batch, *shape[:axis], n, *shape[axis + 1 :]))
        start += count
    return parts
