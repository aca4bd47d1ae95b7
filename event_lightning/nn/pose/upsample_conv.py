"""A bilinear x2 upsampling followed by a zero-padded convolution, as convolutions at the low resolution.

The spiking UNet's up layers compute ``conv2d(upsample_x2(x), W, padding=k // 2)`` (bilinear,
``align_corners=False``). Both are linear, so each of the four output phases ``(a, b)``
(output pixel ``(2p + a, 2q + b)``) is one convolution of ``x`` itself with a composite kernel
``M_a^T W M_b``: the upsampling's two-tap interpolation folded into ``W``. For a 5x5 kernel a
phase reads 4x4 input pixels, so the four phases cost 64 multiply-adds per input pixel and
channel pair where the upsampled convolution costs 100, and the 4x larger upsampled image is
never built (nor its gradient in the backward pass). This is most of a pure SNN training step on
the CPU (the up layers hold 85 % of the network's MACs).

Borders: bilinear upsampling clamps to the edge pixel, which a replicate-padded ``x`` gives, but
the convolution pads the *upsampled* image with zeros, and the composite kernels would read the
clamped values there instead. Those values are the edge rows and columns of the upsampled image
repeated, so what they wrongly add to the outputs within ``k // 2`` of the border is a 1-D
convolution of one interpolated edge line, subtracted afterwards (about ``0.8 / H`` of the
convolution's cost). The result equals the upsampled convolution up to float rounding (tested
in float64 to 1e-12, values and gradients of both inputs).
"""

from __future__ import annotations

import functools
import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from event_lightning.nn.pose.conv_chunks import chunked_conv
from event_lightning.nn.pose.precision import autocast_off

__all__ = ["FOLD_MIN_SIZE", "Upsample2xConv2d", "upsample2x_conv2d"]

FOLD_MIN_SIZE = 16
"""Smallest input side that :class:`Upsample2xConv2d` folds into phase convolutions. Below it the
phases' outputs are too small for oneDNN to run them faster than the one convolution of the
upsampled image, despite its 100 instead of 64 multiply-adds per input pixel: pose SNN bench up1
(20 images of 256 x 8 x 8 -> 64 channels) takes 111 ms upsampled and 119 ms as four phase
convolutions, forward and backward (109-118 and 131-138 ms as the one stacked convolution, on a
busier machine), where up2 at 16 x 16 takes 159 ms upsampled and 112 ms folded (CPU, one thread)."""


def _phase_taps(radius: int) -> tuple[tuple[int, tuple[tuple[float, ...], ...]], ...]:
    """Per output phase ``a`` (0: even, 1: odd output index): ``(first input offset, M_a)``.

    ``M_a[j][i]`` is the weight of input pixel ``p + first + i`` in upsampled pixel ``2p + a + j -
    radius`` (the ``j``-th tap of the kernel): upsampled pixel ``2q`` is ``0.25 x[q-1] + 0.75 x[q]``,
    ``2q + 1`` is ``0.75 x[q] + 0.25 x[q+1]``.
    """
    phases = []
    for a in (0, 1):
        taps = []
        for j in range(-radius, radius + 1):
            n = a + j
            q = n // 2
            taps.append({q - 1: 0.25, q: 0.75} if n % 2 == 0 else {q: 0.75, q + 1: 0.25})
        first = min(min(t) for t in taps)
        last = max(max(t) for t in taps)
        rows = tuple(tuple(t.get(first + i, 0.0) for i in range(last - first + 1)) for t in taps)
        phases.append((first, rows))
    return tuple(phases)


@functools.lru_cache(maxsize=16)
def _phase_matrices(radius: int, device: torch.device, dtype: torch.dtype) -> tuple[list[int], Tensor, Tensor, Tensor]:
    """:func:`_phase_taps` as tensors on ``device``, built once per device and dtype (a forward pass
    copies nothing to the device): the two phases' first offsets, their tap matrices stacked
    ``[2, k, taps]`` (zero-filled to the longer one), and the edge sums ``[2, radius, k]``: row ``m``
    of side 0 (top / left) sums the kernel taps ``j < radius - m``, side 1 (bottom / right) the
    taps ``j > radius + m``; and the composition ``[k * k, 4 * taps * taps]`` that turns a
    flattened ``k x k`` kernel into the four phases' ``taps x taps`` kernels (one matmul)."""
    phases = _phase_taps(radius)
    taps = max(len(m[0]) for _, m in phases)
    k = 2 * radius + 1
    # normal tensors even when first built under inference_mode: training saves them for backward
    with torch.inference_mode(False), torch.no_grad():
        mats = torch.zeros(2, k, taps, dtype=dtype, device=device)
        for a, (_, m) in enumerate(phases):  # scalar fills: no host tensor goes to the device
            for j, row in enumerate(m):
                for i, value in enumerate(row):
                    if value:
                        mats[a, j, i].fill_(value)
        j = torch.arange(k, device=device)
        m = torch.arange(radius, device=device)[:, None]
        sums = torch.stack([j < radius - m, j > radius + m]).to(dtype)
        compose = torch.einsum("aju,blv->jlabuv", mats, mats).reshape(k * k, 4 * taps * taps)
    return [first for first, _ in phases], mats, sums, compose


def _edge_corrections(lines: Tensor, kernels: Tensor, padding: int) -> Tensor:
    """What the zero padding removes next to two opposite edges, ``[N, 2, radius, C_out, L]``.

    ``lines [N, 2, C_in, L + 2 * radius - 2 * padding]``: the upsampled image's edge lines on both
    sides (rows for the top and bottom edges, columns for the left and right), which the clamped
    padding repeats ``radius`` times beyond the edge. Output line ``m`` from an edge reads its line
    through the kernel taps that reach past the edge, so its correction is a 1-D convolution along
    the edge with those taps summed: ``kernels [2, radius, C_out, C_in, k]`` (one grouped
    convolution for both sides).
    """
    sides, radius, c_out, c_in, k = kernels.shape
    out = F.conv1d(lines.flatten(1, 2), kernels.reshape(-1, c_in, k), padding=padding, groups=sides)
    return out.unflatten(1, (sides, radius, c_out))


def _first_and_last(x: Tensor, dim: int) -> Tensor:
    """Index 0 and the last index of ``dim`` (twice the same for size 1): one strided slice, whose
    backward fills one zero gradient of ``x``'s size (two ``select``s would fill two)."""
    size = x.shape[dim]
    if size == 1:
        return torch.cat([x, x], dim)
    index = [slice(None)] * x.dim()
    index[dim] = slice(None, None, size - 1)
    return x[tuple(index)]


def _subtract_edges(out: Tensor, row_fix: Tensor, col_fix: Tensor) -> None:
    """``out [N, C_out, 2H, 2W]`` minus the corrections of :func:`_edge_corrections` next to its
    four borders, in place: ``row_fix [N, 2, radius, C_out, 2W]``, ``col_fix [N, 2, radius, C_out, 2H]``."""
    radius = row_fix.shape[2]
    out[..., :radius, :] -= row_fix[:, 0].transpose(1, 2)
    out[..., out.shape[-2] - radius :, :] -= row_fix[:, 1].flip(1).transpose(1, 2)
    out[..., :radius] -= col_fix[:, 0].permute(0, 2, 3, 1)
    out[..., out.shape[-1] - radius :] -= col_fix[:, 1].flip(1).permute(0, 2, 3, 1)


def _edge_gradients(grad: Tensor, radius: int) -> tuple[Tensor, Tensor]:
    """The gradients of ``row_fix`` and ``col_fix`` for :func:`_subtract_edges` of ``grad [N, C_out, 2H, 2W]``."""
    rows = (grad[..., :radius, :], grad[..., grad.shape[-2] - radius :, :].flip(2))
    cols = (grad[..., :radius], grad[..., grad.shape[-1] - radius :].flip(3))
    return (
        -torch.stack([side.transpose(1, 2) for side in rows], 1),
        -torch.stack([side.permute(0, 3, 1, 2) for side in cols], 1),
    )


class _PhaseConvolutions(torch.autograd.Function):
    """The four phase convolutions written into their pixels of the upsampled grid, minus the edge
    corrections: one autograd node around one convolution.

    The phases read windows of the padded input that differ by one pixel in each direction, so one
    convolution of the whole padded input with the four phase kernels stacked as ``4 * C_out``
    output channels computes them all, on one extra row and column (6 % more multiply-adds at 32 x
    32, 13 % at 16 x 16), and each phase keeps its offset slice. On the CPU that replaces four
    convolutions of ``C_out`` channels, each on a copied window, and in the backward pass four
    copied gradient windows and their sum into one input gradient (pose SNN bench, forward and
    backward: up3 5 %, up2 12 % faster). As separate autograd ops the phases also cost a stack,
    a pixel shuffle, a zero-filled gradient per window slice and a full copy of the output gradient
    per in-place edge correction; here each phase is written straight into its strided pixels.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        padded: Tensor,
        kernels: Tensor,
        row_fix: Tensor | None,
        col_fix: Tensor | None,
        origins: tuple[tuple[int, int], ...],
        size: tuple[int, int],
    ) -> Tensor:
        height, width = size
        c_out = kernels.shape[0]
        stacked_kernels = _stacked_kernels(kernels)
        stacked = F.conv2d(padded, stacked_kernels)  # autocast picks the convolution dtype
        out = stacked.new_empty(stacked.shape[0], c_out, height, 2, width, 2)
        for phase, (rows, cols) in enumerate(origins):
            channels = slice(phase * c_out, (phase + 1) * c_out)
            out[:, :, :, phase // 2, :, phase % 2] = stacked[:, channels, rows : rows + height, cols : cols + width]
        out = out.view(*out.shape[:2], 2 * height, 2 * width)
        if row_fix is not None and col_fix is not None:
            _subtract_edges(out, row_fix.to(out.dtype), col_fix.to(out.dtype))
        ctx.save_for_backward(padded, stacked_kernels)
        ctx.origins, ctx.size, ctx.conv_dtype, ctx.stacked_shape = origins, size, out.dtype, stacked.shape
        ctx.kernels_dtype = kernels.dtype
        ctx.fix_dtype = None if row_fix is None else row_fix.dtype
        ctx.radius = 0 if row_fix is None else row_fix.shape[2]
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        padded, stacked_kernels = ctx.saved_tensors
        height, width = ctx.size
        dtype = ctx.conv_dtype
        c_out = stacked_kernels.shape[0] // 4
        grad = grad.to(dtype)
        phases = grad.unflatten(3, (width, 2)).unflatten(2, (height, 2))  # [N, C_out, H, 2, W, 2]
        grad_stacked = grad.new_zeros(ctx.stacked_shape)  # the extra row and column get no gradient
        for phase, (rows, cols) in enumerate(ctx.origins):
            channels = slice(phase * c_out, (phase + 1) * c_out)
            grad_stacked[:, channels, rows : rows + height, cols : cols + width] = phases[
                :, :, :, phase // 2, :, phase % 2
            ]
        need_input, need_kernels = ctx.needs_input_grad[:2]
        grad_padded, grad_stacked_kernels, _ = torch.ops.aten.convolution_backward(
            grad_stacked,
            padded.to(dtype),
            stacked_kernels.to(dtype),
            None,
            [1, 1],
            [0, 0],
            [1, 1],
            False,
            [0, 0],
            1,
            [need_input, need_kernels, False],
        )
        grad_kernels = None
        if need_kernels:  # [4 * C_out, C_in, taps, taps] -> [C_out, C_in, 4, taps, taps]
            grad_kernels = grad_stacked_kernels.unflatten(0, (4, c_out)).permute(1, 2, 0, 3, 4).to(ctx.kernels_dtype)
        if need_input:
            grad_padded = grad_padded.to(padded.dtype)
        row_grad = col_grad = None
        if ctx.fix_dtype is not None and any(ctx.needs_input_grad[2:4]):
            row_grad, col_grad = (g.to(ctx.fix_dtype) for g in _edge_gradients(grad, ctx.radius))
        return grad_padded, grad_kernels, row_grad, col_grad, None, None


def _stacked_kernels(kernels: Tensor) -> Tensor:
    """``[C_out, C_in, 4, taps, taps]`` -> ``[4 * C_out, C_in, taps, taps]``, phase-major."""
    return kernels.permute(2, 0, 1, 3, 4).flatten(0, 1)


def upsample2x_conv2d(x: Tensor, weight: Tensor) -> Tensor:
    """``conv2d(interpolate(x, scale_factor=2, mode="bilinear"), weight, padding=k // 2)``, bias-free.

    Args:
        x: ``[N, C_in, H, W]`` images at the low resolution.
        weight: ``[C_out, C_in, k, k]`` with odd ``k`` (stride 1, dilation 1, one group); ``2H`` and
            ``2W`` must be at least ``k // 2``.

    Returns:
        ``[N, C_out, 2H, 2W]``, in the dtype ``conv2d`` gives these inputs (autocast applies to the
        convolutions; the composite kernels are built in the weight's dtype).
    """
    k = weight.shape[-1]
    radius = k // 2
    height, width = x.shape[-2:]
    if weight.shape[-2] != k or k % 2 == 0:
        raise ValueError(f"upsample2x_conv2d needs a square kernel of odd size, found {tuple(weight.shape[-2:])}")
    if 2 * min(height, width) < radius:
        raise ValueError(f"upsample2x_conv2d: a {height}x{width} input is too small for a {k}x{k} kernel")
    firsts, mats, sums, compose = _phase_matrices(radius, weight.device, weight.dtype)
    taps = mats.shape[-1]
    pad = max(max(-f for f in firsts), max(f + taps - 1 for f in firsts))
    c_out, c_in = weight.shape[:2]
    with autocast_off(weight.device.type):
        # [C_out, C_in, 4, taps, taps], phase 2a + b: one matmul (an einsum would permute twice)
        kernels = (weight.reshape(c_out * c_in, k * k) @ compose).view(c_out, c_in, 4, taps, taps)
        row_sums = torch.einsum("smj,oijl->smoil", sums, weight)  # [2, radius, C_out, C_in, k]
        col_sums = torch.einsum("sml,oijl->smoij", sums, weight)
    origins = tuple((pad + first_r, pad + first_c) for first_r, first_c in itertools.product(firsts, firsts))
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    row_fix = col_fix = None
    if radius:  # a 1x1 kernel reads no padding

        def upsampled_lines(edges: Tensor) -> Tensor:  # edge rows or columns [N, C_in, 2, L] -> [N, 2, C_in, 2L]
            return F.interpolate(edges.transpose(1, 2), scale_factor=(1, 2), mode="bilinear", align_corners=False)

        # Rows beyond the top and bottom edges, corners included; columns beyond the left and right edges.
        rows = F.pad(upsampled_lines(_first_and_last(x, -2)), (radius, radius, 0, 0), mode="replicate")
        cols = upsampled_lines(_first_and_last(x, -1).transpose(-1, -2))
        row_fix = _edge_corrections(rows, row_sums, 0)  # [N, 2, radius, C_out, 2W]
        col_fix = _edge_corrections(cols, col_sums, radius)  # [N, 2, radius, C_out, 2H]
    return _PhaseConvolutions.apply(padded, kernels, row_fix, col_fix, origins, (height, width))


class Upsample2xConv2d(nn.Conv2d):
    """A bias-free, stride-1 ``nn.Conv2d`` with an odd square kernel and ``k // 2`` zero padding,
    applied to its input upsampled x2 (bilinear): ``[N, C_in, H, W]`` -> ``[N, C_out, 2H, 2W]``.

    The parameters, state-dict keys and hooks are those of the ``nn.Conv2d`` it replaces (its hooks
    see the low-resolution input); the forward pass is :func:`upsample2x_conv2d`, or for inputs
    under :data:`FOLD_MIN_SIZE` pixels a side the upsampling and the convolution as they read, on
    chunks of images on the CPU (:func:`~event_lightning.nn.pose.conv_chunks.chunked_conv`).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        if kernel_size % 2 == 0:
            raise ValueError(f"Upsample2xConv2d needs an odd kernel size, found {kernel_size}")
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return chunked_conv(self._upsampled_conv, x)

    def _upsampled_conv(self, x: Tensor) -> Tensor:
        if min(x.shape[-2:]) < FOLD_MIN_SIZE:
            up = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            return F.conv2d(up, self.weight, padding=self.padding)
        return upsample2x_conv2d(x, self.weight)
