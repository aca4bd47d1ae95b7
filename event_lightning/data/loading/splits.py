"""Which recordings validate, and in what order evaluation sees them.

Two pure functions of labels and a seed, shared by the DataModules:

* :func:`stratified_holdout` takes a validation split out of the training recordings, the same
  fraction of every class, so ``val`` is not the test split;
* :func:`class_mixed_order` orders a split for evaluation so that every class comes early and
  in turn: with files listed class by class, ``--trainer.limit_val_batches 2`` would otherwise
  see one class only.

Both are fixed for a seed (a constant of the DataModule, not the run's seed), so ``val`` holds
the same recordings in every run and on every rank.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["SPLIT_SEED", "class_mixed_order", "stratified_holdout"]

# Fixed so that validation holds the same recordings whatever seed_everything says.
SPLIT_SEED = 1_872_406


def _rank_within_class(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per sample, its position ``0..n_c - 1`` in a random order of its own class ``c``."""
    shuffled = rng.permutation(labels.size)
    by_class = shuffled[np.argsort(labels[shuffled], kind="stable")]  # classes in turn, random within
    counts = np.bincount(labels)[np.unique(labels)]
    ranks = np.empty(labels.size, dtype=np.int64)
    ranks[by_class] = np.arange(labels.size) - np.repeat(np.cumsum(counts) - counts, counts)
    return ranks


def stratified_holdout(
    labels: Sequence[int], fraction: float, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """``(kept, held_out)`` sorted sample indices: ``round(fraction * N)`` held out (at least one
    when ``fraction > 0``), each class in proportion to its size.

    Every sample gets its quantile within its own class (in a random order of that class); the
    lowest quantiles are held out, so a class of ``n_c`` samples gives ``fraction * n_c`` of them,
    rounded either way, even when that is below one for every class (a small stand-in).

    Args:
        labels: ``[N]`` class index of every sample.
        fraction: share to hold out, in ``[0, 1)``.
        seed: picks which samples of a class are held out.

    Raises:
        ValueError: ``fraction`` outside ``[0, 1)``.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"the validation fraction must lie in [0, 1); found {fraction}")
    labels = np.asarray(labels, dtype=np.int64)
    if fraction == 0.0 or labels.size < 2:
        return np.arange(labels.size), np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    quantile = (_rank_within_class(labels, rng) + 0.5) / np.bincount(labels)[labels]
    tie_break = rng.permutation(labels.size)  # equal quantiles (equal class sizes): a random class first
    count = min(max(1, round(fraction * labels.size)), labels.size - 1)
    held = np.zeros(labels.size, dtype=bool)
    held[np.lexsort((tie_break, quantile))[:count]] = True
    return np.flatnonzero(~held), np.flatnonzero(held)


def class_mixed_order(labels: Sequence[int], seed: int = SPLIT_SEED) -> np.ndarray:
    """A fixed order of ``labels``' samples in rounds: one random sample of every class per round.

    Every prefix of ``k`` rounds holds ``k`` samples of each class that has that many, so a
    validation limited to a few batches still sees every class.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        return np.zeros(0, dtype=np.int64)
    ranks = _rank_within_class(labels, np.random.default_rng(seed))
    return np.lexsort((labels, ranks))
