"""Validation held out of the training recordings; evaluation served in a fixed class-mixed order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from event_lightning.data.datasets.nmnist import NMNISTFramesDataModule
from event_lightning.data.datasets.pokerdvs import PokerDVSDataModule
from event_lightning.data.loading.loaders import LoaderSettings
from event_lightning.data.loading.splits import class_mixed_order, stratified_holdout
from event_lightning.data.loading.windows import window_loader


def test_stratified_holdout_takes_the_same_share_of_every_class() -> None:
    labels = np.repeat(np.arange(4), [10, 20, 30, 1])
    kept, held = stratified_holdout(labels, 0.2)
    assert np.intersect1d(kept, held).size == 0 and np.union1d(kept, held).tolist() == list(range(61))
    assert np.bincount(labels[held], minlength=4).tolist() == [2, 4, 6, 0]  # in proportion to the class sizes
    # a small set still validates on every class it can: 4 samples per class, 10 % -> 4 of 40 held out
    small = np.repeat(np.arange(10), 4)
    assert len(set(small[stratified_holdout(small, 0.1)[1]].tolist())) == 4
    np.testing.assert_array_equal(held, stratified_holdout(labels, 0.2)[1])
    assert not np.array_equal(held, stratified_holdout(labels, 0.2, seed=5)[1])
    assert stratified_holdout(labels, 0.0)[1].size == 0
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        stratified_holdout(labels, 1.0)


def test_class_mixed_order_visits_every_class_in_turn() -> None:
    labels = np.repeat(np.arange(10), [5, 5, 5, 5, 5, 5, 5, 5, 5, 3])  # listed class by class, as on disk
    order = class_mixed_order(labels)
    assert sorted(order.tolist()) == list(range(len(labels)))
    for rounds in (1, 2, 3):
        assert sorted(labels[order[: 10 * rounds]].tolist()) == sorted(list(range(10)) * rounds)
    np.testing.assert_array_equal(order, class_mixed_order(labels))


def _labels(loader) -> list[int]:
    return [int(label) for _, _, labels in loader for label in labels]


def _files(data: NMNISTFramesDataModule, stage: str) -> set[str]:
    train, indices = data.stage_indices(stage)
    files = data.sample_files(train)
    return {files[i] for i in indices}


def test_nmnist_validation_is_held_out_of_training_and_class_mixed(tmp_path: Path) -> None:
    data = NMNISTFramesDataModule(
        root=str(tmp_path), n_train=40, n_test=20, val_fraction=0.25, batch_size=10, num_workers=0, time_window=50_000
    )
    data.setup("fit")
    train, val, test = (_files(data, stage) for stage in ("train", "val", "test"))
    assert len(train) == 30 and len(val) == 10 and len(test) == 20
    assert not train & val and not (train | val) & test
    assert val <= set(data.sample_files(True)) and test == set(data.sample_files(False))
    assert len(data.train_dataloader().dataset) == 30
    val_labels, test_labels = _labels(data.val_dataloader()), _labels(data.test_dataloader())
    assert len(val_labels) == 10 and len(test_labels) == 20
    # the first batch sees many digits, not one class after the other as the files are listed
    assert len(set(test_labels[:10])) >= 6 and len(set(val_labels)) >= 6
    # fixed order: the same in every call (and every run)
    assert _labels(data.test_dataloader()) == test_labels
    predicted = torch.cat([labels for _, _, labels in data.predict_dataloader()]).tolist()
    assert predicted == test_labels


def test_pokerdvs_validates_on_the_test_split_like_the_tutorial_in_mixed_order(tmp_path: Path) -> None:
    data = PokerDVSDataModule(
        root=str(tmp_path),
        synthetic=True,
        synthetic_config={"train_per_class": 3, "test_per_class": 3},
        batch_size=4,
        num_workers=0,
    )
    data.setup("fit")
    train_flag, val_indices = data.stage_indices("val")
    assert not train_flag and sorted(val_indices.tolist()) == list(range(12))
    labels = _labels(data.val_dataloader())
    assert sorted(labels[:4]) == [0, 1, 2, 3] and sorted(labels) == sorted(data.sample_labels(False))
    assert len(data.train_dataloader().dataset) == 12


def test_hgvae_window_loaders_evaluate_in_class_mixed_order() -> None:
    # The HG-VAE DataModules validate on the test split, as the reference; files list class by class.
    labels = np.repeat(np.arange(4), 3)
    samples = [{"frames": np.full((2, 2, 4, 4), i, np.uint8), "label": np.int64(c)} for i, c in enumerate(labels)]
    settings = LoaderSettings(batch_size=4, num_workers=0, pin_memory=False)
    evaluation = window_loader(samples, settings, None, train=False, shuffle=False, labels=labels.tolist())
    batches = [batch["label"].tolist() for batch in evaluation]
    assert [sorted(b) for b in batches] == [[0, 1, 2, 3]] * 3
    # the frames travel with their labels
    for batch in evaluation:
        np.testing.assert_array_equal(labels[batch["frames"][0, :, 0, 0, 0].long().numpy()], batch["label"].numpy())
