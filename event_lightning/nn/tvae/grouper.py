"""Groupers of the Topographic VAE: the fixed topographic "W" that turns (z, u) into t.

For every latent index the grouper computes a local energy ``v = W * u**2`` (a sum of squared
u's over a neighbourhood with periodic boundaries) and returns ``t = (z + mu) / sqrt(v + eps)``
with one learnable scalar ``mu``. The neighbourhood is a 2-D window:

* capsule groupers (:class:`CapsuleGrouper`): the (time, capsule index) plane of each capsule, a
  torus of size ``seq_len x cap_dim``; capsules never interact and frames interact only here;
* the 2-D grouper (:class:`TorusGrouper`): each capsule of ``side**2`` units viewed as a
  ``side x side`` torus inside one frame.

A kernel of size k covers the offsets ``delta = -(k - 1) // 2 ... k // 2`` (for even k one more
step forward than backward), the window of the reference implementation's circularly padded
transposed convolution. Kernel entry ``[a, b]`` weighs offset ``(a - (kT - 1) // 2, b - (kC - 1) // 2)``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from event_lightning.nn.tvae.networks import at_least_float32

GROUPER_KINDS = ("shifting", "stationary", "torus2d", "none")


def window_offsets(kernel_size: int) -> list[int]:
    """Offsets covered by a kernel of ``kernel_size`` along one periodic axis: -(k-1)//2 ... k//2."""
    if kernel_size < 1:
        raise ValueError(f"kernel size must be >= 1, got {kernel_size}")
    return list(range(-((kernel_size - 1) // 2), kernel_size // 2 + 1))


def shifting_kernel(kernel_size: int, n_off_diag: int) -> Tensor:
    """The TVAE band kernel [k, k]: 1 where |delta_t - delta_c| <= n_off_diag, else 0.

    A neighbour ``delta_t`` frames away is read ``delta_t`` capsule positions further on (plus up
    to ``n_off_diag`` either side): the prior prefers t_{l+1} = Roll_{+1}(t_l).
    """
    if n_off_diag < 0:
        raise ValueError(f"n_off_diag must be >= 0, got {n_off_diag}")
    index = torch.arange(kernel_size)
    return ((index[:, None] - index[None, :]).abs() <= n_off_diag).float()


def stationary_kernel(kernel_time: int, kernel_cap: int) -> Tensor:
    """The "Bubbles" all-ones kernel [kT, kC]: no shift between neighbouring frames."""
    if kernel_time < 1 or kernel_cap < 1:
        raise ValueError(f"kernel sizes must be >= 1, got ({kernel_time}, {kernel_cap})")
    return torch.ones(kernel_time, kernel_cap)


def circular_correlate2d(x: Tensor, kernel: Tensor) -> Tensor:
    """Periodic 2-D correlation on the window of :func:`window_offsets`.

    out[n, i, j] = sum_{a, b} kernel[a, b] * x[n, (i + a - (kH-1)//2) mod H, (j + b - (kW-1)//2) mod W]

    Args:
        x: [N, H, W].
        kernel: [kH, kW] with kH <= H and kW <= W.
    Returns:
        [N, H, W].
    """
    k_h, k_w = kernel.shape
    height, width = x.shape[-2:]
    if k_h > height or k_w > width:
        raise ValueError(f"grouper kernel {tuple(kernel.shape)} is larger than the periodic grid {(height, width)}")
    # F.pad takes (left, right, top, bottom): low side (k-1)//2, high side k//2.
    padded = F.pad(x[:, None], ((k_w - 1) // 2, k_w // 2, (k_h - 1) // 2, k_h // 2), mode="circular")
    return F.conv2d(padded, kernel[None, None].to(x.dtype)).squeeze(1)


class Grouper(nn.Module):
    """Maps the two latent samples (z, u), each [N, D], to the decoder input t [N, D].

    N = B * seq_len frames in sequence-major order (all frames of sequence 0 first).
    """

    uses_u: bool = True

    def __init__(self, n_caps: int, cap_dim: int, seq_len: int) -> None:
        super().__init__()
        if min(n_caps, cap_dim, seq_len) < 1:
            raise ValueError(f"n_caps, cap_dim and seq_len must be >= 1, got {n_caps}, {cap_dim}, {seq_len}")
        self.n_caps = n_caps
        self.cap_dim = cap_dim
        self.seq_len = seq_len

    @property
    def latent_dim(self) -> int:
        return self.n_caps * self.cap_dim

    def _check(self, z: Tensor) -> None:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"grouper expects latents [N, {self.latent_dim}], got {tuple(z.shape)}")
        if z.shape[0] % self.seq_len:
            raise ValueError(
                f"grouper: {z.shape[0]} frames are not whole sequences of {self.seq_len} frames; "
                "the batch must hold complete sequences in sequence-major order"
            )


class EnergyGrouper(Grouper, ABC):
    """Shared part of the topographic groupers: t = (z + mu) / sqrt(W * u**2 + eps)."""

    def __init__(self, kernel: Tensor, n_caps: int, cap_dim: int, seq_len: int, mu_init: float, eps: float) -> None:
        super().__init__(n_caps, cap_dim, seq_len)
        # A buffer: W is fixed (frozen in the reference), yet it travels with the state dict.
        self.register_buffer("kernel", kernel.float().clone())
        self.mu = nn.Parameter(torch.full((1,), float(mu_init)))
        self.eps = float(eps)

    @abstractmethod
    def energy(self, u: Tensor) -> Tensor:
        """v = W * u**2, [N, D] -> [N, D]."""

    def forward(self, z: Tensor, u: Tensor | None = None) -> Tensor:
        self._check(z)
        if u is None or u.shape != z.shape:
            raise ValueError(f"grouper needs u with the shape of z {tuple(z.shape)}")
        # float32 also under autocast: the energy sums up to kT * kC squares (169 for 13 x 13),
        # which bf16 would round to 3 significant digits, and t feeds every frame's likelihood.
        with torch.autocast(z.device.type, enabled=False):
            return (at_least_float32(z) + self.mu) / torch.sqrt(self.energy(at_least_float32(u)) + self.eps)


class CapsuleGrouper(EnergyGrouper):
    """Independent capsules, each a (seq_len x cap_dim) torus over time and capsule index.

    v[b, l, c, i] = sum_{dt, dc} W[dt, dc] * u[b, (l + dt) mod S, c, (i + dc) mod cap_dim]**2
    """

    def energy(self, u: Tensor) -> Tensor:
        n_seq = u.shape[0] // self.seq_len
        grid = (u**2).view(n_seq, self.seq_len, self.n_caps, self.cap_dim).transpose(1, 2)
        v = circular_correlate2d(grid.reshape(-1, self.seq_len, self.cap_dim), self.kernel)
        return v.view(n_seq, self.n_caps, self.seq_len, self.cap_dim).transpose(1, 2).reshape(u.shape)


class TorusGrouper(EnergyGrouper):
    """The 2-D TVAE: each capsule of side**2 units is a side x side torus inside one frame."""

    def __init__(self, kernel: Tensor, n_caps: int, cap_dim: int, seq_len: int, mu_init: float, eps: float):
        super().__init__(kernel, n_caps, cap_dim, seq_len, mu_init, eps)
        side = math.isqrt(cap_dim)
        if side * side != cap_dim:
            raise ValueError(f"the 2-D grouper needs a square capsule size, got cap_dim={cap_dim}")
        self.side = side

    def energy(self, u: Tensor) -> Tensor:
        grid = (u**2).reshape(-1, self.side, self.side)
        return circular_correlate2d(grid, self.kernel).reshape(u.shape)


class IdentityGrouper(Grouper):
    """The plain VAE: t = z (no u, no mu)."""

    uses_u = False

    def forward(self, z: Tensor, u: Tensor | None = None) -> Tensor:
        self._check(z)
        return z


def build_grouper(
    kind: str,
    n_caps: int,
    cap_dim: int,
    seq_len: int,
    group_kernel: tuple[int, int] | list[int] = (1, 1),
    n_off_diag: int = 0,
    mu_init: float = 30.0,
    eps: float = 1e-6,
) -> Grouper:
    """A grouper by name.

    Args:
        kind: "shifting" (TVAE band kernel, requires kT == kC), "stationary" (Bubbles, all-ones
            kT x kC), "torus2d" (all-ones k x k on each capsule's square torus), "none" (VAE).
        group_kernel: (kT, kC) for the capsule groupers, (k, k) for torus2d.
        n_off_diag: band half-width of the shifting kernel (K = 2 * n_off_diag + 1).
    """
    if kind not in GROUPER_KINDS:
        raise ValueError(f"unknown grouper {kind!r}; expected one of {GROUPER_KINDS}")
    if kind == "none":
        return IdentityGrouper(n_caps, cap_dim, seq_len)
    if len(group_kernel) != 2:
        raise ValueError(f"group_kernel must have two sizes (time, capsule), got {list(group_kernel)}")
    k_time, k_cap = (int(k) for k in group_kernel)
    if kind == "shifting":
        if k_time != k_cap:
            raise ValueError(f"the shifting kernel must be square (kT == kC), got {(k_time, k_cap)}")
        return CapsuleGrouper(shifting_kernel(k_time, n_off_diag), n_caps, cap_dim, seq_len, mu_init, eps)
    if kind == "stationary":
        return CapsuleGrouper(stationary_kernel(k_time, k_cap), n_caps, cap_dim, seq_len, mu_init, eps)
    return TorusGrouper(stationary_kernel(k_time, k_cap), n_caps, cap_dim, seq_len, mu_init, eps)
