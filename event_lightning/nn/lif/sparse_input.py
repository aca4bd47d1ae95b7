"""The input projection ``W_in x`` of all time steps, as a sparse product when the input is sparse event data."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch.nn import functional as F

from event_lightning.nn.cpu_only import cpu_only

# Inputs at most this dense (fraction of non-zero cells) are projected as a sparse matrix; event
# frames of 1 ms are typically 1-2 % non-zero, where the sparse product is ~2x faster in total.
_SPARSE_INPUT_MAX_DENSITY = 0.05


class _SparseInputLinear(torch.autograd.Function):
    """``x @ weight.T`` for a constant (no-grad) sparse ``x [M, I]`` given as CSR together with the
    CSR of its transpose; gradient for ``weight`` only, as ``(x.T @ grad).T``. Building ``x.T``
    up front costs one radix sort of the column indices, far less than torch transposing a CSR
    tensor inside the backward pass."""

    @staticmethod
    def forward(ctx, x_csr: torch.Tensor, xt_csr: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(xt_csr)
        return x_csr @ weight.t()

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        (xt_csr,) = ctx.saved_tensors
        return None, None, (xt_csr @ grad_out).t()


def _csr_pair(x2d: torch.Tensor, dtype: type[np.floating]) -> tuple[torch.Tensor, torch.Tensor]:
    """CSR copies, with values of ``dtype``, of a 2-D CPU tensor ``[M, I]`` (float or integer
    counts) and of its transpose ``[I, M]``.

    The non-zeros are found once with numpy (its compare + flatnonzero is several times faster
    than torch's nonzero on floats); the transpose orders them by column with a stable sort,
    a radix sort when the column index fits in 16 bits.
    """
    rows_total, cols_total = x2d.shape
    dense = x2d.numpy()
    flat = np.flatnonzero(dense != 0)
    values = dense.reshape(-1)[flat].astype(dtype, copy=False)
    rows = flat // cols_total
    cols = flat - rows * cols_total
    row_ptr = np.zeros(rows_total + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=rows_total), out=row_ptr[1:])
    col_ptr = np.zeros(cols_total + 1, dtype=np.int64)
    np.cumsum(np.bincount(cols, minlength=cols_total), out=col_ptr[1:])
    order = np.argsort(cols.astype(np.int16) if cols_total <= 1 << 15 else cols, kind="stable")
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the ops used here are stable
        warnings.simplefilter("ignore", UserWarning)
        x_csr = torch.sparse_csr_tensor(
            torch.from_numpy(row_ptr), torch.from_numpy(cols), torch.from_numpy(values), size=(rows_total, cols_total)
        )
        xt_csr = torch.sparse_csr_tensor(
            torch.from_numpy(col_ptr),
            torch.from_numpy(rows[order]),
            torch.from_numpy(values[order]),
            size=(cols_total, rows_total),
        )
    return x_csr, xt_csr


@cpu_only
def _sparse_pays(x: torch.Tensor) -> bool:
    """Whether ``x`` is at most 5 % non-zero, estimated on every 97th element (a host read: CPU only)."""
    probe = x.reshape(-1)[::97]
    return bool(torch.count_nonzero(probe) <= _SPARSE_INPUT_MAX_DENSITY * probe.numel())


def input_projection(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``F.linear(x, weight)`` for ``x [..., I]``, through a sparse product when ``x`` is a sparse
    data tensor (CPU, no gradient wanted for it, at most 5 % non-zero); the result equals the
    dense product up to float summation order (~1e-6 relative).

    ``x`` may hold integer counts (the uint8 / int16 frames of the classification loaders): only its
    non-zeros are converted on the sparse path, and the dense path casts ``x`` (counts, or floats of
    another dtype) to the weight's dtype on its device, so no float copy of the whole input is made
    on the host. Off the CPU nothing here reads a value on the host.
    """
    integer_counts = not x.is_floating_point()
    if integer_counts and (x.dtype == torch.bool or x.is_complex()):
        raise TypeError(f"input_projection: expected float or integer counts, found {x.dtype}")
    use_sparse = (
        x.device.type == "cpu"
        and weight.device.type == "cpu"
        and weight.dtype in (torch.float32, torch.float64)
        and (integer_counts or x.dtype == weight.dtype)
        and not x.requires_grad
        and x.dim() >= 2
        and x.numel() >= 1 << 16
        and not torch.compiler.is_compiling()
        and not torch.is_autocast_enabled("cpu")  # no bf16 sparse kernels; autocast picks the dense dtype
        and _sparse_pays(x)
    )
    if not use_sparse:
        return F.linear(x.to(weight.dtype), weight)  # no copy when the dtypes already match
    return _sparse_projection(x, weight)


@cpu_only
def _sparse_projection(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``x @ weight.T`` through the CSR pair of ``x`` (the sparse path of :func:`input_projection`)."""
    x2d = x.reshape(-1, x.shape[-1]).contiguous()
    pair = _csr_pair(x2d, np.float32 if weight.dtype == torch.float32 else np.float64)
    return _SparseInputLinear.apply(*pair, weight).reshape(*x.shape[:-1], weight.shape[0])
