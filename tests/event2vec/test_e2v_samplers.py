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
    normalize_time_batch,
    pad_collate,
    random_chunk_sample,
    random_sample,
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


def test_normalize_time_modes():
    t = np.array([1000, 1500, 3000], dtype=np.int64)
    np.testing.assert_allclose(normalize_time(t, "dataset-wise", t_max=4000), [0.0, 0.125, 0.5])
    np.testing.assert_allclose(normalize_time(t, "sample-wise"), [0.0, 0.25, 1.0])
    np.testing.assert_array_equal(normalize_time(t, "none"), [0, 500, 2000])
    assert normalize_time(t, "dataset-wise", 4000).dtype == np.float32
    assert normalize_time(t, "none").dtype == np.int64
    np.testing.assert_array_equal(normalize_time(np.array([5, 5]), "sample-wise"), [0.0, 0.0])
    with pytest.raises(ValueError, match="t_max"):
        normalize_time(t, "dataset-wise")
    with pytest.raises(ValueError, match="norm_t"):
        normalize_time(t, "per-sample")


def test_normalize_time_batch_padding():
    t = np.array([[10, 20, 30], [100, 300, 0]])
    out = normalize_time_batch(t, np.array([3, 2]), "sample-wise")
    np.testing.assert_allclose(out, [[0.0, 0.5, 1.0], [0.0, 1.0, -1.0]])
    out = normalize_time_batch(t, np.array([3, 0]), "none")
    np.testing.assert_array_equal(out, [[0, 10, 20], [-1, -1, -1]])


def test_pad_collate():
    samples = [
        EventSample(torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6]), torch.tensor([0.0, 0.1, 0.2]),
                    torch.tensor([0, 1, 0]), 3),
        EventSample(torch.tensor([7]), torch.tensor([8]), torch.tensor([0.0]), torch.tensor([1]), 1),
        EventSample(torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64), torch.zeros(0),
                    torch.zeros(0, dtype=torch.int64), 0),
    ]  # fmt: skip
    batch = pad_collate(samples)
    assert batch.x.tolist() == [[1, 2, 3], [7, -1, -1], [-1, -1, -1]]
    assert batch.p.tolist() == [[0, 1, 0], [1, -1, -1], [-1, -1, -1]]
    torch.testing.assert_close(batch.t, torch.tensor([[0.0, 0.1, 0.2], [0.0, -1.0, -1.0], [-1.0, -1.0, -1.0]]))
    assert batch.valid_mask.tolist() == [[True] * 3, [True, False, False], [False] * 3]
    assert batch.label.tolist() == [3, 1, 0] and batch.x.dtype == torch.int64


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
