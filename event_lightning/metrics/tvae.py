"""Evaluation metrics of the Topographic VAE: equivariance error and CapCorr.

Both read the capsule representation t as [B, S, n_caps, cap_dim] (B sequences of S frames).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import integrate, special
from torch import Tensor
from torchmetrics import Metric


def as_capsules(t: Tensor, n_caps: int, cap_dim: int, seq_len: int) -> Tensor:
    """t [B * S, n_caps * cap_dim] (sequence-major) or [B, S, n_caps, cap_dim] -> [B, S, n_caps, cap_dim]."""
    if t.dim() == 4 and tuple(t.shape[1:]) == (seq_len, n_caps, cap_dim):
        return t
    if t.dim() != 2 or t.shape[1] != n_caps * cap_dim or t.shape[0] % seq_len:
        raise ValueError(
            f"expected t [B*{seq_len}, {n_caps * cap_dim}] or [B, {seq_len}, {n_caps}, {cap_dim}], got {tuple(t.shape)}"
        )
    return t.reshape(-1, seq_len, n_caps, cap_dim)


def equivariance_error(t: Tensor, n_caps: int, cap_dim: int, seq_len: int) -> Tensor:
    """Per-sequence equivariance error, [B].

    E_eq(b) = sum_{l < m} sum_c || Roll_{m-l}(t^_{b,l,c}) - t^_{b,m,c} ||_1, where t^ is each capsule
    vector divided by its L2 norm and Roll_k(x)[i] = x[(i - k) mod cap_dim] (torch.roll). A
    representation whose capsules roll by one position per frame scores 0.
    """
    caps = as_capsules(t, n_caps, cap_dim, seq_len)
    caps = caps / caps.norm(dim=-1, keepdim=True)
    first, second = torch.triu_indices(seq_len, seq_len, offset=1, device=caps.device)
    if first.numel() == 0:
        return caps.new_zeros(caps.shape[0])
    shift = (second - first)[:, None]
    # Roll_k(x)[i] = x[i - k]: gather the source index (i - k) mod cap_dim for every pair.
    source = (torch.arange(cap_dim, device=caps.device)[None, :] - shift) % cap_dim  # [P, cap_dim]
    earlier = caps[:, first]  # [B, P, n_caps, cap_dim]
    index = source[None, :, None, :].expand_as(earlier)
    rolled = torch.gather(earlier, -1, index)
    return (rolled - caps[:, second]).abs().sum(dim=(1, 2, 3))


def equivariance_random_baseline(n_caps: int, cap_dim: int, seq_len: int) -> float:
    """Expected E_eq of one sequence whose capsules are independent uniform unit vectors.

    pairs * n_caps * cap_dim * E|X - Y|, with X, Y iid first coordinates of uniform points on the
    sphere S^(cap_dim - 1); E|X - Y| = 2 * integral F(x) (1 - F(x)) dx with the CDF F from the
    regularised incomplete beta function. 13 270.7 for the MNIST sizes (18, 18, 18).
    """
    if cap_dim == 1:
        mean_abs_diff = 1.0  # X, Y uniform on {-1, +1}
    else:

        def cdf(x: float) -> float:
            return 0.5 + 0.5 * np.sign(x) * special.betainc(0.5, (cap_dim - 1) / 2.0, x * x)

        mean_abs_diff = 2.0 * integrate.quad(lambda x: cdf(x) * (1.0 - cdf(x)), -1.0, 1.0)[0]
    pairs = seq_len * (seq_len - 1) / 2
    return float(pairs * n_caps * cap_dim * mean_abs_diff)


class EquivarianceError(Metric):
    """Mean per-sequence :func:`equivariance_error` over everything seen since the last reset."""

    full_state_update = False

    def __init__(self, n_caps: int, cap_dim: int, seq_len: int) -> None:
        super().__init__()
        self.n_caps, self.cap_dim, self.seq_len = n_caps, cap_dim, seq_len
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, t: Tensor) -> None:
        errors = equivariance_error(t.detach(), self.n_caps, self.cap_dim, self.seq_len)
        # Out-of-place: states reset under inference mode (trainer.validate) stay usable in training.
        self.total = self.total + errors.double().sum()
        self.count = self.count + errors.numel()

    def compute(self) -> Tensor:
        return (self.total / self.count.clamp(min=1)).float()


def capsule_roll_offsets(t: Tensor, factors: Tensor, n_caps: int, cap_dim: int) -> tuple[Tensor, Tensor, Tensor]:
    """Observed and true capsule offsets of each sequence for CapCorr.

    For sequence b: the transformed factor f = argmax |factors[b, 0] - factors[b, 1]|; candidate
    canonical frames are those where factor f has index 0. For each candidate frame w, the
    periodic cross-correlation c[k] = sum_i t[b, 0, c, (i + k) mod C] t[b, w, c, i] (via FFT) peaks
    at the roll k with t_0 = Roll_k(t_w) per capsule; the observed offset is the most frequent
    peak over capsules (smallest on ties). The true offset is factors[b, 0, f]. Of the
    candidates the one whose observed offset is closest to the true offset is kept (the
    reference's optimistic choice).

    Args:
        t: [B, S, n_caps * cap_dim] or [B * S, ...] sequence-major.
        factors: [B, S, F] integer factor indices of every frame.
    Returns:
        (factor index [B], observed offset [B], true offset [B]) as int64.
    Raises:
        ValueError: a sequence never reaches index 0 of its transformed factor (this check reads
            the result on the host; :class:`CapCorr` defers it to ``compute``).
    """
    factor, observed, true, has_canonical = _roll_offsets(t, factors, n_caps, cap_dim)
    if not bool(has_canonical.all()):
        raise ValueError(_NO_CANONICAL_FRAME)
    return factor, observed, true


_NO_CANONICAL_FRAME = (
    "CapCorr: some sequences never reach index 0 of their transformed factor; "
    "the sequence must be at least as long as the factor's cycle"
)


def _roll_offsets(t: Tensor, factors: Tensor, n_caps: int, cap_dim: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:func:`capsule_roll_offsets` without the host-side check, plus whether each sequence has a
    canonical frame (bool [B]); everything stays on the device."""
    if factors.dim() != 3:
        raise ValueError(f"factors must be [B, S, F], got {tuple(factors.shape)}")
    batch, seq_len, _ = factors.shape
    caps = as_capsules(t.reshape(-1, n_caps * cap_dim), n_caps, cap_dim, seq_len).double()
    factors = factors.long()
    factor = (factors[:, 0] - factors[:, 1]).abs().argmax(dim=1)  # [B]
    spectrum = torch.fft.fft(caps, dim=-1)
    corr = torch.fft.ifft(spectrum[:, :1] * spectrum.conj(), dim=-1).real  # [B, S, n_caps, C]
    peaks = corr.argmax(dim=-1)  # [B, S, n_caps]
    # one_hot would check the range of peaks on the host
    votes = (peaks[..., None] == torch.arange(cap_dim, device=peaks.device)).sum(dim=2)  # [B, S, C]
    observed = votes.argmax(dim=-1)  # first maximum = smallest most frequent offset
    rows = torch.arange(batch, device=factors.device)
    true = factors[rows, 0, factor]  # [B]
    is_canonical = factors[rows, :, factor] == 0  # [B, S]
    distance = (true[:, None] - observed).abs().double().masked_fill(~is_canonical, float("inf"))
    best = distance.argmin(dim=1)
    return factor, observed[rows, best], true, is_canonical.any(dim=1)


class CapCorr(Metric):
    """Pearson correlation between observed and true capsule offsets, per transformed factor.

    ``compute`` returns [n_factors] (NaN for a factor seen fewer than twice or with constant offsets).
    """

    full_state_update = False

    def __init__(self, n_factors: int, n_caps: int, cap_dim: int) -> None:
        super().__init__()
        self.n_factors, self.n_caps, self.cap_dim = n_factors, n_caps, cap_dim
        self.add_state("factor", default=[], dist_reduce_fx="cat")
        self.add_state("observed", default=[], dist_reduce_fx="cat")
        self.add_state("true", default=[], dist_reduce_fx="cat")
        self.add_state("no_canonical_frame", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, t: Tensor, factors: Tensor) -> None:
        factor, observed, true, has_canonical = _roll_offsets(t.detach(), factors, self.n_caps, self.cap_dim)
        # Counted here, raised in compute: a check in update would stop every step to read it.
        self.no_canonical_frame = self.no_canonical_frame + (~has_canonical).sum()
        self.factor.append(factor)
        self.observed.append(observed)
        self.true.append(true)

    def compute(self) -> Tensor:
        if int(self.no_canonical_frame):
            raise ValueError(f"{_NO_CANONICAL_FRAME} ({int(self.no_canonical_frame)} sequences)")
        out = torch.full((self.n_factors,), float("nan"))
        # The states are lists until synchronised across processes, then tensors.
        if isinstance(self.factor, list) and not self.factor:
            return out
        factor, observed, true = (
            (torch.cat(s) if isinstance(s, list) else s).double().cpu() for s in (self.factor, self.observed, self.true)
        )
        for index in range(self.n_factors):
            chosen = factor == index
            if int(chosen.sum()) < 2:
                continue
            x, y = observed[chosen] - observed[chosen].mean(), true[chosen] - true[chosen].mean()
            denominator = torch.sqrt((x * x).sum() * (y * y).sum())
            if denominator > 0:
                out[index] = float((x * y).sum() / denominator)
        return out
