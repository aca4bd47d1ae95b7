"""Event samplers, time normalisation, the padding collate and per-worker seeding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from event_lightning.data.loading.event_samplers import (
    EventSample,
    deterministic_uniform_sample,
    gaussian_sample,
    make_sampler,
    multivariate_gaussian_sample,
    normalize_time,
    pad_collate,
    random_chunk_sample,
    random_sample,
    relative_times,
    seed_worker,
    select_event_indices,
    uniform_sample,
)

ALL = [
    "random_sample",
    "uniform_sample",
    "deterministic_uniform_sample",
    "gaussian_sample",
    "multivariate_gaussian_sample",
    "random_chunk_sample_10",
    "random_chunk_sample_4",
]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("n", [255, 256, 1000, 28_000])
def test_counts_range_sorted(name, n):
    sampler = make_sampler(name)
    indices = sampler(np.random.default_rng(0), n, 255)
    assert indices.shape == (255,) and indices.dtype == np.int64
    assert indices.min() >= 0 and indices.max() < n
    assert np.all(np.diff(indices) >= 0)


@pytest.mark.parametrize("name", ["random_sample", "random_chunk_sample_10", "random_chunk_sample_4"])
def test_distinct_where_required(name):
    sampler = make_sampler(name)
    rng = np.random.default_rng(1)
    for n in (255, 260, 300, 5000):
        for _ in range(20):
            indices = sampler(rng, n, 255)
            assert len(np.unique(indices)) == 255
    # n == sample_number leaves no choice: every event once
    np.testing.assert_array_equal(sampler(rng, 255, 255), np.arange(255))


def test_random_sample_is_uniform():
    rng = np.random.default_rng(2)
    counts = np.bincount(np.concatenate([random_sample(rng, 20, 5) for _ in range(4000)]), minlength=20)
    # each index is chosen with probability 5/20 per draw: 1000 expected, sd about 27
    assert counts.min() > 880 and counts.max() < 1120


def test_random_chunk_sample_runs():
    rng = np.random.default_rng(3)
    indices = random_chunk_sample(rng, 1000, 25, 10)
    runs = np.split(indices, np.flatnonzero(np.diff(indices) != 1) + 1)
    # runs of 10, 10 and a remainder of 5 (adjacent runs may merge into longer ones)
    assert sum(len(r) for r in runs) == 25 and all(len(r) % 5 == 0 for r in runs)
    starts_seen = set()
    for _ in range(300):
        starts_seen.add(int(random_chunk_sample(rng, 40, 20, 10)[0]))
    assert min(starts_seen) == 0 and max(starts_seen) == 20  # every feasible layout is reachable


def test_deterministic_and_seeded():
    np.testing.assert_array_equal(deterministic_uniform_sample(None, 11, 6), [0, 2, 4, 6, 8, 10])
    for name in ALL:
        sampler = make_sampler(name)
        a = sampler(np.random.default_rng(7), 5000, 255)
        b = sampler(np.random.default_rng(7), 5000, 255)
        np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(7)
    assert not np.array_equal(random_sample(rng, 5000, 255), random_sample(rng, 5000, 255))  # re-drawn


def test_distributions_of_the_other_samplers():
    rng = np.random.default_rng(4)
    g = gaussian_sample(rng, 100_000, 20_000)
    assert abs(g.mean() - 50_000) < 1000 and abs(g.std() - 25_000) < 1500
    m = multivariate_gaussian_sample(rng, 1000, 100)
    assert np.abs(m - np.arange(100) * 10).max() < 10
    u = uniform_sample(rng, 10, 10_000)
    assert set(np.unique(u)) == set(range(10))  # with replacement, the last event included


def test_select_event_indices_keeps_short_recordings():
    np.testing.assert_array_equal(select_event_indices(random_sample, np.random.default_rng(0), 7, 255), np.arange(7))
    assert len(select_event_indices(random_sample, np.random.default_rng(0), 0, 255)) == 0
    assert len(select_event_indices(random_sample, np.random.default_rng(0), 400, 255)) == 255


def test_make_sampler_rejects_unknown():
    for name in ("random", "random_chunk_sample_", "random_chunk_sample_0", "random_chunk_sample_x"):
        with pytest.raises(ValueError, match="unknown sampler"):
            make_sampler(name)


def _normalised(t: np.ndarray, lengths: np.ndarray, mode: str, t_max: float | None = None) -> torch.Tensor:
    """The device path: host-side relative times, then :func:`normalize_time` on the batch."""
    valid = np.arange(t.shape[1])[None, :] < np.asarray(lengths)[:, None]
    relative = torch.from_numpy(relative_times(t, valid))
    return normalize_time(relative, torch.from_numpy(valid), mode, t_max)


def _reference_normalised(t: np.ndarray, lengths: np.ndarray, mode: str, t_max: float | None = None) -> np.ndarray:
    """What the loader computed before times crossed the bus as integers (numpy float32 on the host)."""
    valid = np.arange(t.shape[1])[None, :] < lengths[:, None]
    relative = t - t[:, :1]
    if mode == "none":
        return np.where(valid, relative, -1)
    if mode == "sample-wise":
        last = np.take_along_axis(relative, np.maximum(lengths - 1, 0)[:, None], axis=1)
        scale = np.where(last > 0, last, 1).astype(np.float32)
    else:
        scale = np.float32(t_max)
    return np.where(valid, relative.astype(np.float32) / scale, np.float32(-1)).astype(np.float32)


def test_normalize_time_modes():
    t = np.array([[1000, 1500, 3000]], dtype=np.int64)
    lengths = np.array([3])
    torch.testing.assert_close(_normalised(t, lengths, "dataset-wise", 4000.0)[0], torch.tensor([0.0, 0.125, 0.5]))
    torch.testing.assert_close(_normalised(t, lengths, "sample-wise")[0], torch.tensor([0.0, 0.25, 1.0]))
    assert _normalised(t, lengths, "none")[0].tolist() == [0, 500, 2000]
    assert _normalised(t, lengths, "dataset-wise", 4000.0).dtype == torch.float32
    assert _normalised(t, lengths, "none").dtype == torch.int64
    assert _normalised(np.array([[5, 5]]), np.array([2]), "sample-wise")[0].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="t_max"):
        _normalised(t, lengths, "dataset-wise")
    with pytest.raises(ValueError, match="norm_t"):
        _normalised(t, lengths, "per-sample")


def test_normalize_time_padding():
    t = np.array([[10, 20, 30], [100, 300, 0]])
    out = _normalised(t, np.array([3, 2]), "sample-wise")
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.5, 1.0], [0.0, 1.0, -1.0]]))
    out = _normalised(t, np.array([3, 0]), "none")
    assert out.tolist() == [[0, 10, 20], [-1, -1, -1]]


@pytest.mark.parametrize("mode", ["dataset-wise", "sample-wise", "none"])
def test_device_normalisation_equals_the_host_float32_division_bit_for_bit(mode):
    rng = np.random.default_rng(0)
    t = np.sort(rng.integers(0, 521_217, size=(64, 255)), axis=1) + rng.integers(0, 10**6, size=(64, 1))
    lengths = rng.integers(0, 256, size=64)
    lengths[:3] = (255, 1, 0)
    got = _normalised(t, lengths, mode, 521_217.0)
    want = _reference_normalised(t, lengths, mode, 521_217.0)
    assert np.array_equal(got.numpy(), want), f"{np.count_nonzero(got.numpy() != want)} timestamps differ"
    if mode == "dataset-wise":  # one scale for all: every distinct time stays distinct
        valid = np.arange(255)[None, :] < lengths[:, None]
        assert len(np.unique(got.numpy()[valid])) == len(np.unique((t - t[:, :1])[valid]))


def test_relative_times_use_the_smallest_exact_integer_type():
    valid = np.ones((2, 3), dtype=bool)
    small = relative_times(np.array([[5, 6, 7], [10, 10, 2**20]]), valid)
    assert small.dtype == np.int32 and small.tolist() == [[0, 1, 2], [0, 0, 2**20 - 10]]
    assert relative_times(np.array([[0, 1, 2**31]]), valid[:1]).dtype == np.int64


def test_pad_collate():
    samples = [
        EventSample(torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6]), torch.tensor([100, 110, 120]),
                    torch.tensor([0, 1, 0]), 3),
        EventSample(torch.tensor([7]), torch.tensor([8]), torch.tensor([50]), torch.tensor([1]), 1),
        EventSample(torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64),
                    torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64), 0),
    ]  # fmt: skip
    batch = pad_collate(samples, length=4)
    assert batch.x.tolist() == [[1, 2, 3, -1], [7, -1, -1, -1], [-1, -1, -1, -1]]
    assert batch.p.tolist() == [[0, 1, 0, -1], [1, -1, -1, -1], [-1, -1, -1, -1]]
    assert batch.t.tolist() == [[0, 10, 20, -1], [0, -1, -1, -1], [-1, -1, -1, -1]]
    assert batch.valid_mask.tolist() == [[True] * 3 + [False], [True] + [False] * 3, [False] * 4]
    assert batch.label.tolist() == [3, 1, 0]
    dtypes = [batch.x.dtype, batch.y.dtype, batch.p.dtype, batch.t.dtype]
    assert dtypes == [torch.int16, torch.int16, torch.int8, torch.int32]
    with pytest.raises(ValueError, match="more than the batch length 2"):
        pad_collate(samples, length=2)


class _Recorder(torch.utils.data.Dataset):
    def __init__(self):
        self.rng = None

    def reseed(self, seed):
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return int(self.rng.integers(1 << 30))


def _draws(seed: int) -> list[int]:
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(_Recorder(), batch_size=None, num_workers=2, worker_init_fn=seed_worker)
    return [int(v) for v in loader]


def test_seed_worker_differs_per_worker_and_repeats_under_seed():
    first = _draws(0)
    assert len(set(first)) == 4  # the two workers draw from different streams
    assert _draws(0) == first
    assert _draws(1) != first
