"""POKER-DVS in tonic's POKERDVS layout, on the synthetic stand-in: the same events and labels as tonic's class."""

import shutil

import numpy as np
import pytest
import torch

from event_lightning.data.datasets.pokerdvs import PokerDVSDataModule
from event_lightning.data.standins.pokerdvs import SyntheticPokerConfig, generate_synthetic_pokerdvs

SMALL = SyntheticPokerConfig(seed=3, train_per_class=5, test_per_class=5, duration_us=20_000)


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("poker")
    generate_synthetic_pokerdvs(root, config=SMALL)
    return root


def test_missing_archive_names_the_file_and_the_folder(tmp_path):
    data = PokerDVSDataModule(root=str(tmp_path))
    with pytest.raises(FileNotFoundError) as error:
        data.setup("fit")
    message = str(error.value)
    assert "pips_train.tar.gz" in message and str(tmp_path / "POKERDVS") in message
    assert "synthetic" in message


def test_stand_in_is_read_by_tonic_and_framed_like_the_tutorial(small_root):
    data = PokerDVSDataModule(root=str(small_root), batch_size=8)
    data.setup("fit")
    train, test = data.split(True), data.split(False)
    assert (len(train), len(test)) == (20, 20)
    labels = sorted(label for _, label in (train[i] for i in range(len(train))))
    assert labels == sorted([0, 1, 2, 3] * 5)
    frames, lengths, targets = next(iter(data.train_dataloader()))
    assert frames.dtype == torch.uint8 and frames.shape[1:] == (8, 2, 35, 35)  # counts (< 256), as ToFrame's
    assert frames.shape[0] == int(lengths.max()) and lengths.min() >= 15  # ~20 frames of 1 ms
    # zero padding beyond each sample's length, events inside it
    for b, length in enumerate(lengths.tolist()):
        assert frames[length:, b].sum() == 0 and frames[:length, b].sum() > 0
    assert data.num_classes == 4 and data.sensor_size.as_tonic() == (35, 35, 2)


def test_archive_is_extracted_when_only_the_archive_is_there(small_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(small_root, root)
    shutil.rmtree(root / "POKERDVS" / "pips_test")
    data = PokerDVSDataModule(root=str(root))
    assert len(data.split(False)) == 20


def test_stand_in_is_deterministic_and_separable_by_class(small_root, tmp_path):
    a = small_root / "POKERDVS"  # written by the fixture with the same config
    b = generate_synthetic_pokerdvs(tmp_path / "b", config=SMALL)
    files_a = sorted(p.relative_to(a) for p in a.glob("pips_train/*/*.npy"))
    assert files_a == sorted(p.relative_to(b) for p in b.glob("pips_train/*/*.npy"))
    for relative in files_a:
        np.testing.assert_array_equal(np.load(a / relative), np.load(b / relative))
    # every recording holds events of both polarities from a moving pip
    events = np.load(a / files_a[0])
    assert events.shape[1] == 4 and set(np.unique(events[:, 3])) == {0, 1}


def test_split_holds_exactly_tonics_events_and_labels(small_root):
    """The module reads the recordings itself (bounded reader) in tonic's order: same events, same labels."""
    import tonic  # deferred: only this test compares with tonic

    data = PokerDVSDataModule(root=str(small_root))
    train = data.split(True)
    reference = tonic.datasets.POKERDVS(save_to=str(small_root), train=True)
    assert len(train) == len(reference) == 20
    for index in range(len(train)):
        events, label, _ = train.source(index)
        tonic_events, tonic_label = reference[index]
        assert label == tonic_label
        for field in ("t", "x", "y", "p"):
            np.testing.assert_array_equal(events[field].astype(np.int64), tonic_events[field].astype(np.int64))
