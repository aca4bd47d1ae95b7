"""Resuming the LIF classifier at an epoch boundary reproduces the uninterrupted run exactly."""

from __future__ import annotations

import torch

from event_lightning.cli import main
from event_lightning.data.loading.classification_datamodule import EpochSeededRandomSampler
from event_lightning.models.lif_classifier import LIFClassifier


def test_epoch_seeded_sampler_is_a_function_of_seed_and_epoch(monkeypatch):
    data = list(range(50))
    a, b = EpochSeededRandomSampler(data, seed=3), EpochSeededRandomSampler(data, seed=3)
    torch.manual_seed(0)
    first = list(a)
    torch.manual_seed(1)  # the global RNG plays no part
    assert list(b) == first and sorted(first) == data
    a.set_epoch(1)
    assert list(a) != first and sorted(a) == data
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(EpochSeededRandomSampler(data, seed=4)) != first
    monkeypatch.setenv("PL_GLOBAL_SEED", "3")
    assert list(EpochSeededRandomSampler(data)) == first


def _final_state(tmp_path, data_root, quick, name: str, epochs_then_resume: list[int]):
    runs = tmp_path / name
    for i, epochs in enumerate(epochs_then_resume):
        extra = ["--trainer.max_epochs", str(epochs), "--trainer.deterministic", "true"]
        main(["fit", *quick.args(runs, data_root, *extra, *(["--resume", "last"] if i else []))])
    return torch.load(runs / "quickstart" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)


def _max_abs_difference(a, b) -> float:
    if isinstance(a, torch.Tensor):
        return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        return max((_max_abs_difference(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        return max((_max_abs_difference(x, y) for x, y in zip(a, b, strict=True)), default=0.0)
    assert a == b
    return 0.0


def test_three_epochs_straight_equal_one_epoch_then_resume_to_three(tmp_path, tiny_digits, quick):
    straight = _final_state(tmp_path, tiny_digits, quick, "straight", [3])
    resumed = _final_state(tmp_path, tiny_digits, quick, "resumed", [1, 3])
    assert straight["global_step"] == resumed["global_step"] == 3 * quick.steps_per_epoch
    weights = _max_abs_difference(straight["state_dict"], resumed["state_dict"])
    optimizer = _max_abs_difference(straight["optimizer_states"], resumed["optimizer_states"])
    print(f"max |straight - resumed|: weights {weights:.3g}, optimizer state {optimizer:.3g}")
    assert weights <= 1e-6 and optimizer <= 1e-6
    # the run really trained: the weights moved away from their initial values
    assert _max_abs_difference(straight["state_dict"], _initial_state(quick, tiny_digits)) > 1e-3


def _initial_state(quick, data_root) -> dict[str, torch.Tensor]:
    torch.manual_seed(42)  # seed_everything: 42 of the quickstart
    return LIFClassifier(sensor_size=[34, 34, 2], num_classes=10, hidden_features=100).state_dict()
