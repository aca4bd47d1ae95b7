"""Equivariance error and CapCorr of the TVAE."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from event_lightning.metrics.tvae import (
    CapCorr,
    EquivarianceError,
    capsule_roll_offsets,
    equivariance_error,
    equivariance_random_baseline,
)


def pairwise_loop_error(t: torch.Tensor) -> torch.Tensor:
    """Sum over l < m of |Roll_{m-l}(t^_l) - t^_m|, one pair at a time. t: [B, S, n_caps, C] -> [B]."""
    t = t / t.norm(dim=-1, keepdim=True)
    seq_len = t.shape[1]
    total = torch.zeros(t.shape[0], dtype=t.dtype)
    for first in range(seq_len - 1):
        for second in range(first + 1, seq_len):
            total += (torch.roll(t[:, first], second - first, dims=-1) - t[:, second]).abs().sum(dim=(1, 2))
    return total


def reference_fast_error(t: torch.Tensor) -> torch.Tensor:
    """The reference's fast form: roll time and capsule axes together, halve (valid when C == S)."""
    t = t / t.norm(dim=-1, keepdim=True)
    total = torch.zeros(t.shape[0], dtype=t.dtype)
    for shift in range(1, t.shape[1]):
        total += (t.roll(shifts=(shift, shift), dims=(1, -1)) - t).abs().sum(dim=(1, 2, 3))
    return total / 2


def test_matches_the_pairwise_definition_and_the_reference_fast_form() -> None:
    torch.manual_seed(0)
    t = torch.randn(3, 6, 4, 6, dtype=torch.float64)
    errors = equivariance_error(t, 4, 6, 6)
    torch.testing.assert_close(errors, pairwise_loop_error(t))
    torch.testing.assert_close(errors, reference_fast_error(t))
    uneven = torch.randn(2, 5, 3, 7, dtype=torch.float64)  # cap_dim != S: the pairwise definition still holds
    torch.testing.assert_close(equivariance_error(uneven.reshape(10, 21), 3, 7, 5), pairwise_loop_error(uneven))


def test_perfectly_rolling_capsules_score_zero() -> None:
    torch.manual_seed(1)
    seq_len, n_caps = 18, 18
    first = torch.randn(4, n_caps, seq_len)
    frames = torch.stack([torch.roll(first, l, dims=-1) * (1.0 + l) for l in range(seq_len)], 1)  # any positive scale
    assert float(equivariance_error(frames, n_caps, seq_len, seq_len).abs().max()) < 1e-2  # float32 rounding
    # Rolling the wrong way is far from equivariant.
    backwards = torch.stack([torch.roll(first, -l, dims=-1) for l in range(seq_len)], 1)
    assert float(equivariance_error(backwards, n_caps, seq_len, seq_len).min()) > 1000


def test_random_capsules_score_the_random_baseline() -> None:
    baseline = equivariance_random_baseline(18, 18, 18)
    assert baseline == pytest.approx(13270.7, abs=0.5)  # the number in the spec
    torch.manual_seed(2)
    metric = EquivarianceError(18, 18, 18)
    for _ in range(4):
        metric.update(torch.randn(16 * 18, 18 * 18))
    assert float(metric.compute()) == pytest.approx(baseline, rel=0.01)
    assert equivariance_random_baseline(1, 1, 3) == 3.0


def test_equivariance_metric_averages_per_sequence() -> None:
    torch.manual_seed(3)
    t1, t2 = torch.randn(2 * 4, 8), torch.randn(3 * 4, 8)
    metric = EquivarianceError(2, 4, 4)
    metric.update(t1)
    metric.update(t2)
    all_errors = torch.cat([equivariance_error(t1, 2, 4, 4), equivariance_error(t2, 2, 4, 4)])
    torch.testing.assert_close(metric.compute(), all_errors.mean())


def rolled_sequence(first: torch.Tensor, seq_len: int, start: int, size: int) -> torch.Tensor:
    """Capsules that roll by one per factor step: frame l holds Roll_{index_l}(base), index_l = (start + l) mod size."""
    return torch.stack([torch.roll(first, (start + l) % size, dims=-1) for l in range(seq_len)])


def test_capsule_offsets_recover_the_start_index() -> None:
    torch.manual_seed(4)
    seq_len = cap_dim = 15
    factors, sequences = [], []
    for start, factor in [(0, 4), (3, 3), (11, 2), (7, 3)]:
        f = torch.zeros(seq_len, 5, dtype=torch.long)
        f[:, factor] = (start + torch.arange(seq_len)) % 15
        factors.append(f)
        sequences.append(rolled_sequence(torch.randn(6, cap_dim), seq_len, start, cap_dim))
    factor, observed, true = capsule_roll_offsets(torch.stack(sequences), torch.stack(factors), 6, cap_dim)
    assert factor.tolist() == [4, 3, 2, 3]
    assert true.tolist() == [0, 3, 11, 7]
    assert observed.tolist() == [0, 3, 11, 7]


def test_capsule_offsets_pick_the_best_of_several_canonical_frames() -> None:
    # Scale has 5 values: index 0 appears at several frames; the closest observed offset wins.
    torch.manual_seed(5)
    seq_len, cap_dim = 15, 15
    f = torch.zeros(1, seq_len, 5, dtype=torch.long)
    f[0, :, 1] = (2 + torch.arange(seq_len)) % 5
    t = rolled_sequence(torch.randn(4, cap_dim), seq_len, 2, cap_dim)[None]
    factor, observed, true = capsule_roll_offsets(t, f, 4, cap_dim)
    # Frames with scale index 0: 3, 8, 13; roll from frame w to frame 0 is -w mod 15 = 12, 7, 2.
    assert (factor.item(), true.item(), observed.item()) == (1, 2, 2)


def test_capcorr_is_pearson_per_factor() -> None:
    torch.manual_seed(6)
    seq_len = cap_dim = 15
    metric = CapCorr(5, 3, cap_dim)
    rng = np.random.default_rng(0)
    observed, true = [], []
    for start in rng.integers(0, 15, size=12):
        f = torch.zeros(1, seq_len, 5, dtype=torch.long)
        f[0, :, 3] = (int(start) + torch.arange(seq_len)) % 15
        shift = int(start) if start % 3 else int(rng.integers(0, 15))  # some sequences are not equivariant
        t = rolled_sequence(torch.randn(3, cap_dim), seq_len, shift, cap_dim)[None]
        metric.update(t, f)
        observed_now = capsule_roll_offsets(t, f, 3, cap_dim)[1].item()
        observed.append(observed_now)
        true.append(int(start))
    values = metric.compute()
    assert math.isnan(float(values[0])) and math.isnan(float(values[4]))
    assert float(values[3]) == pytest.approx(float(np.corrcoef(observed, true)[0, 1]), abs=1e-9)


def test_capcorr_of_perfect_capsules_is_one() -> None:
    torch.manual_seed(7)
    metric = CapCorr(5, 2, 15)
    for start in range(0, 15, 2):
        f = torch.zeros(1, 15, 5, dtype=torch.long)
        f[0, :, 4] = (start + torch.arange(15)) % 15
        metric.update(rolled_sequence(torch.randn(2, 15), 15, start, 15)[None], f)
    assert float(metric.compute()[4]) == pytest.approx(1.0)
