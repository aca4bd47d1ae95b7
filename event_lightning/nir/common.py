"""Helpers shared by the NIR exporters: array conversion, graph assembly, metadata."""

from __future__ import annotations

from collections.abc import Sequence

import nir
import numpy as np
import torch
from torch import nn

from event_lightning.nir.executor import DT_METADATA_KEY

DISCRETISATION = "forward-euler; synapse before membrane; back edges delayed one step"
"""Stored as ``metadata["discretisation"]``: how ``dt`` turns the graph into steps (docs/nir.md)."""


def array(tensor: torch.Tensor) -> np.ndarray:
    """A detached float32 numpy copy of ``tensor`` (the dtype NIR files keep weights in)."""
    return tensor.detach().cpu().to(torch.float32).numpy().copy()


def full(shape: Sequence[int], value: float) -> np.ndarray:
    """A float64 array of ``shape`` filled with ``value`` (neuron parameters, one per neuron)."""
    return np.full(tuple(int(s) for s in shape), float(value), dtype=np.float64)


def check_dt(dt: float) -> float:
    """``dt`` as a float after checking it is a positive number of seconds."""
    dt = float(dt)
    if not dt > 0:
        raise ValueError(f"NIR export: dt must be > 0 seconds, found {dt}")
    return dt


def make_graph(nodes: dict[str, nir.NIRNode], edges: list[tuple[str, str]], dt: float, model: str) -> nir.NIRGraph:
    """A type-checked ``NIRGraph`` with ``metadata`` ``dt`` (s), ``discretisation`` and ``model``."""
    metadata = {DT_METADATA_KEY: float(dt), "discretisation": DISCRETISATION, "model": model}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=True)


def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    """Weight and bias of one conv equal to ``bn(conv(x))`` with ``bn`` in eval mode (running stats).

    ``bn(y) = (y - mean) * g + beta`` with ``g = gamma / sqrt(var + eps)``, so the folded conv has
    weight ``W * g`` (per output channel) and bias ``(b - mean) * g + beta``.
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("NIR export: BatchNorm without running statistics cannot be folded into the conv")
    with torch.no_grad():
        gain = torch.rsqrt(bn.running_var.double() + bn.eps)
        if bn.weight is not None:
            gain = gain * bn.weight.double()
        bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(gain)
        shift = (bias - bn.running_mean.double()) * gain
        if bn.bias is not None:
            shift = shift + bn.bias.double()
        weight = conv.weight.double() * gain[:, None, None, None]
    return weight.float().numpy(), shift.float().numpy()


def conv_output_hw(height: int, width: int, conv: nn.Conv2d) -> tuple[int, int]:
    """Spatial output size of ``conv`` for an ``height x width`` input."""
    out = []
    for size, k, s, p, d in zip(
        (height, width), conv.kernel_size, conv.stride, conv.padding, conv.dilation, strict=True
    ):
        out.append((size + 2 * p - d * (k - 1) - 1) // s + 1)
    return out[0], out[1]


def conv_node(conv: nn.Conv2d, weight: np.ndarray, bias: np.ndarray, hw: Sequence[int]) -> nir.Conv2d:
    """A ``nir.Conv2d`` with ``conv``'s geometry, the given (possibly folded) weight and bias, for
    an input of spatial size ``hw``."""
    if isinstance(conv.padding, str):
        raise ValueError(f"NIR export: write the conv padding as numbers, found padding={conv.padding!r}")
    return nir.Conv2d(
        input_shape=tuple(int(s) for s in hw),
        weight=weight,
        stride=np.array(conv.stride),
        padding=np.array(conv.padding),
        dilation=np.array(conv.dilation),
        groups=conv.groups,
        bias=bias,
    )
