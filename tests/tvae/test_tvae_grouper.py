"""The TVAE groupers against direct evaluations of their formulas."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from event_lightning.nn.tvae import (
    CapsuleGrouper,
    IdentityGrouper,
    TorusGrouper,
    build_grouper,
    shifting_kernel,
    window_offsets,
)


def loop_capsule_energy(u: torch.Tensor, seq_len: int, n_caps: int, cap_dim: int, weight) -> torch.Tensor:
    """v[b, l, c, i] = sum_{dt, dc} weight(dt, dc) u[b, (l+dt) % S, c, (i+dc) % C]^2, by plain loops."""
    caps = u.view(-1, seq_len, n_caps, cap_dim) ** 2
    out = torch.zeros_like(caps)
    offsets_t, offsets_c = weight.offsets
    for b, l, c, i in itertools.product(range(caps.shape[0]), range(seq_len), range(n_caps), range(cap_dim)):
        for dt in offsets_t:
            for dc in offsets_c:
                w = weight(dt, dc)
                if w:
                    out[b, l, c, i] += w * caps[b, (l + dt) % seq_len, c, (i + dc) % cap_dim]
    return out.reshape(u.shape)


class Band:
    """The shifting kernel as a function of the offsets: 1 iff |dt - dc| <= n_off_diag."""

    def __init__(self, k: int, n_off_diag: int) -> None:
        self.offsets = (window_offsets(k), window_offsets(k))
        self.n_off_diag = n_off_diag

    def __call__(self, dt: int, dc: int) -> float:
        return float(abs(dt - dc) <= self.n_off_diag)


class Box:
    def __init__(self, k_time: int, k_cap: int) -> None:
        self.offsets = (window_offsets(k_time), window_offsets(k_cap))

    def __call__(self, dt: int, dc: int) -> float:
        return 1.0


def reference_conv_transpose_energy(u: torch.Tensor, seq_len: int, n_caps: int, cap_dim: int, kernel: torch.Tensor):
    """The reference's construction: circular pad then ConvTranspose3d (kernel (kT, kC, 1))."""
    k_t, k_c = kernel.shape
    caps = u.view(-1, seq_len, n_caps, cap_dim, 1).permute(0, 2, 1, 3, 4).reshape(-1, 1, seq_len, cap_dim, 1) ** 2
    low = [k // 2 - (k + 1) % 2 for k in (k_t, k_c)]
    padded = F.pad(caps, (0, 0, low[1], k_c // 2, low[0], k_t // 2), mode="circular")
    conv_pad = (2 * (k_t // 2) - (k_t + 1) % 2, 2 * (k_c // 2) - (k_c + 1) % 2, 0)
    v = F.conv_transpose3d(padded, kernel[None, None, :, :, None], padding=conv_pad)
    return v.view(-1, n_caps, seq_len, cap_dim).transpose(1, 2).reshape(u.shape)


def test_window_offsets_match_the_reference_padding() -> None:
    assert window_offsets(1) == [0]
    assert window_offsets(5) == [-2, -1, 0, 1, 2]
    assert window_offsets(10) == [-4, -3, -2, -1, 0, 1, 2, 3, 4, 5]
    assert window_offsets(18) == list(range(-8, 10))


def test_shifting_kernel_is_a_band() -> None:
    expected = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]], dtype=torch.float32)
    assert torch.equal(shifting_kernel(4, 1), expected)
    assert torch.equal(shifting_kernel(3, 0), torch.eye(3))


@pytest.mark.parametrize("k", [1, 3, 4, 5, 6])
@pytest.mark.parametrize("n_off_diag", [0, 1])
def test_shifting_grouper_matches_loop_formula(k: int, n_off_diag: int) -> None:
    seq_len, n_caps, cap_dim = 6, 2, 6
    torch.manual_seed(k * 10 + n_off_diag)
    grouper = build_grouper("shifting", n_caps, cap_dim, seq_len, (k, k), n_off_diag, mu_init=0.0, eps=0.0)
    u = torch.randn(2 * seq_len, n_caps * cap_dim, dtype=torch.float64)
    expected = loop_capsule_energy(u, seq_len, n_caps, cap_dim, Band(k, n_off_diag))
    torch.testing.assert_close(grouper.energy(u.float()).double(), expected, rtol=1e-5, atol=1e-5)
    reference = reference_conv_transpose_energy(u, seq_len, n_caps, cap_dim, shifting_kernel(k, n_off_diag).double())
    torch.testing.assert_close(expected, reference)


@pytest.mark.parametrize("k_time,k_cap", [(1, 3), (5, 3), (4, 2), (2, 5), (6, 5)])
def test_stationary_grouper_matches_loop_formula(k_time: int, k_cap: int) -> None:
    seq_len, n_caps, cap_dim = 6, 3, 5
    torch.manual_seed(k_time * 7 + k_cap)
    grouper = build_grouper("stationary", n_caps, cap_dim, seq_len, (k_time, k_cap))
    assert isinstance(grouper, CapsuleGrouper)
    u = torch.randn(seq_len, n_caps * cap_dim, dtype=torch.float64)
    expected = loop_capsule_energy(u, seq_len, n_caps, cap_dim, Box(k_time, k_cap))
    torch.testing.assert_close(grouper.energy(u.float()).double(), expected, rtol=1e-5, atol=1e-5)
    reference = reference_conv_transpose_energy(
        u, seq_len, n_caps, cap_dim, torch.ones(k_time, k_cap, dtype=torch.float64)
    )
    torch.testing.assert_close(expected, reference)


@pytest.mark.parametrize("k", [3, 4, 5])
def test_torus_grouper_matches_loop_formula(k: int) -> None:
    side, n_caps = 6, 2
    torch.manual_seed(k)
    grouper = build_grouper("torus2d", n_caps, side * side, 1, (k, k))
    assert isinstance(grouper, TorusGrouper)
    u = torch.randn(3, n_caps * side * side, dtype=torch.float64)
    grid = u.view(3, n_caps, side, side) ** 2
    expected = torch.zeros_like(grid)
    for dr in window_offsets(k):
        for dc in window_offsets(k):
            expected += torch.roll(grid, shifts=(-dr, -dc), dims=(2, 3))  # roll(x, -d)[i] = x[i + d]
    torch.testing.assert_close(grouper.energy(u.float()).double(), expected.reshape(u.shape), rtol=1e-5, atol=1e-5)


def test_t_is_shifted_z_over_root_energy() -> None:
    torch.manual_seed(0)
    grouper = build_grouper("shifting", 2, 4, 4, (3, 3), 1, mu_init=30.0, eps=1e-6)
    z, u = torch.randn(8, 8), torch.randn(8, 8)
    expected = (z + 30.0) / torch.sqrt(grouper.energy(u) + 1e-6)
    torch.testing.assert_close(grouper(z, u), expected)
    assert grouper.mu.requires_grad and not any(b.requires_grad for b in grouper.buffers())
    (grouper(z, u).sum()).backward()
    assert grouper.mu.grad is not None


def test_vae_grouper_is_identity_and_ignores_u() -> None:
    grouper = build_grouper("none", 2, 3, 4)
    assert isinstance(grouper, IdentityGrouper) and not grouper.uses_u
    z = torch.randn(8, 6)
    assert torch.equal(grouper(z), z)


def test_grouper_rejects_bad_shapes_and_options() -> None:
    grouper = build_grouper("shifting", 2, 4, 4, (3, 3), 1)
    with pytest.raises(ValueError, match="whole sequences"):
        grouper(torch.randn(6, 8), torch.randn(6, 8))
    with pytest.raises(ValueError, match="square"):
        build_grouper("shifting", 2, 4, 4, (3, 2), 1)
    with pytest.raises(ValueError, match="larger than the periodic grid"):
        build_grouper("stationary", 2, 4, 4, (5, 3)).energy(torch.randn(4, 8))
    with pytest.raises(ValueError, match="unknown grouper"):
        build_grouper("bubbly", 2, 4, 4)
    with pytest.raises(ValueError, match="square capsule"):
        build_grouper("torus2d", 1, 20, 1, (5, 5))
