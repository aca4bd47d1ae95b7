"""The synthetic N-MNIST stand-in: layout, determinism, split, markers, readable by real readers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tonic
from scipy.ndimage import map_coordinates
from tonic.io import read_mnist_file

from event_lightning.data.standins import nmnist as sd
from event_lightning.data.standins.digits import mnist_canvas, mnist_style_digits
from event_lightning.data.standins.nmnist import (
    SyntheticDigitsConfig,
    generate_synthetic_nmnist,
    read_synthetic_nmnist_split,
    split_pool_indices,
)
from event_lightning.events.core import SensorSize, validate
from event_lightning.events.formats import read_nmnist_bin

SMALL = SyntheticDigitsConfig(n_train=20, n_test=10, seed=1)


@pytest.fixture(scope="module")
def small_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic_nmnist")
    generate_synthetic_nmnist(root, SMALL)
    return root


def _file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.bin"))}


def test_layout_labels_and_events_are_nmnist_like(small_root: Path) -> None:
    for train, n, folder in ((True, 20, "Train"), (False, 10, "Test")):
        samples = read_synthetic_nmnist_split(small_root, train)
        assert len(samples) == n
        assert samples == sorted(samples, key=lambda s: (s[1], s[0].name))
        for path, label in samples:
            assert path.parent == small_root / folder / str(label)
            assert path.suffix == ".bin" and len(path.stem) == 5 and path.stem.isdigit()
            events = read_nmnist_bin(path)
            validate(events, SensorSize(34, 34, 2), origin=path)
            assert len(events) > 1000
            assert 0 <= events["t"].min() and events["t"].max() <= SMALL.duration_us
            assert set(np.unique(events["p"]).tolist()) == {0, 1}
            # Both polarities spread over the whole sensor-facing digit, not one corner.
            assert np.ptp(events["x"]) > 15 and np.ptp(events["y"]) > 15
        labels = {label for _, label in samples}
        assert labels <= set(range(10)) and len(labels) >= 5
    indices = sorted(int(p.stem) for p, _ in read_synthetic_nmnist_split(small_root, True))
    assert indices == list(range(20))


def test_recordings_have_real_nmnist_statistics(small_root: Path) -> None:
    # N-MNIST (Orchard et al. 2015): three ~100 ms saccades, recordings of ~300-336 ms on 34x34
    # pixels, ~1.5k-7k events each, ON and OFF about equally.
    recordings = [read_nmnist_bin(path) for path, _ in read_synthetic_nmnist_split(small_root, True)]
    spans = np.array([np.ptp(events["t"]) for events in recordings])
    counts = np.array([len(events) for events in recordings])
    on_share = np.array([events["p"].mean() for events in recordings])
    assert SMALL.duration_us == 300_000 and (spans > 290_000).all() and (spans <= 336_000).all()
    assert (counts >= 1_500).all() and (counts <= 7_000).all() and 2_500 <= counts.mean() <= 5_000
    assert (np.abs(on_share - 0.5) < 0.1).all()


def test_digits_are_drawn_like_mnist() -> None:
    from sklearn.datasets import load_digits

    # MNIST: ink scaled into a 20x20 box, centred by centre of mass in 28x28, mean 0.1307 and
    # standard deviation 0.3081 over the canvas (the normalisation constants everyone uses).
    ink, centre = mnist_style_digits(load_digits().images / 16.0, box=20)
    assert ink.shape[1:] == (20, 20) and 0.0 <= ink.min() and ink.max() <= 1.0
    canvas = mnist_canvas(ink, centre)
    assert canvas.shape == (len(ink), 28, 28) and np.allclose(canvas.sum(axis=(1, 2)), ink.sum(axis=(1, 2)))
    assert abs(canvas.mean() - 0.1307) < 0.01 and abs(canvas.std() - 0.3081) < 0.015
    mass = canvas / canvas.sum(axis=(1, 2), keepdims=True)
    centred = np.stack([mass.sum(axis=1) @ np.arange(28), mass.sum(axis=2) @ np.arange(28)], axis=1)
    assert np.abs(centred - 13.5).max() <= 0.5 + 1e-9
    inked = ink[0] / ink[0].sum()
    np.testing.assert_allclose(centre[0], [inked.sum(0) @ np.arange(20), inked.sum(1) @ np.arange(20)])
    # Height fills the box (MNIST scales the longer side, usually the height, to 20 pixels).
    heights = (ink > 0.5).any(axis=2).sum(axis=1)
    assert np.median(heights) >= 18


def test_generation_shows_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    generate_synthetic_nmnist(tmp_path, SyntheticDigitsConfig(n_train=3, n_test=2))
    err = capsys.readouterr().err
    assert "N-MNIST stand-in" in err and "5/5" in err


def test_files_read_identically_by_tonic(small_root: Path) -> None:
    for path, _ in read_synthetic_nmnist_split(small_root, False)[:4]:
        theirs = read_mnist_file(str(path), dtype=tonic.datasets.NMNIST.dtype)
        ours = read_nmnist_bin(path)
        for field in ("x", "y", "t", "p"):
            np.testing.assert_array_equal(ours[field].astype(np.int64), theirs[field])


def test_events_follow_the_three_saccades(small_root: Path) -> None:
    # Every saccade moves the digit, so each third of the recording has plenty of events.
    for path, _ in read_synthetic_nmnist_split(small_root, True)[:5]:
        t = read_nmnist_bin(path)["t"]
        per_saccade = np.bincount(np.minimum(t // SMALL.saccade_duration_us, 2), minlength=3)
        assert (per_saccade > 0.15 * len(t)).all()


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path, small_root: Path) -> None:
    again = tmp_path / "again"
    generate_synthetic_nmnist(again, SMALL)
    assert _file_bytes(again) == _file_bytes(small_root)
    other = tmp_path / "other"
    generate_synthetic_nmnist(other, SyntheticDigitsConfig(n_train=20, n_test=10, seed=2))
    a, b = _file_bytes(small_root), _file_bytes(other)
    assert sum(a.get(k) != v for k, v in b.items()) >= 25


def test_split_is_fixed_disjoint_and_stratified() -> None:
    labels = np.repeat(np.arange(10), 30)
    train, test = split_pool_indices(labels)
    assert np.intersect1d(train, test).size == 0
    assert np.union1d(train, test).tolist() == list(range(300))
    assert np.bincount(labels[test]).tolist() == [round(0.25 * 30)] * 10
    again_train, again_test = split_pool_indices(labels)
    np.testing.assert_array_equal(test, again_test)
    # The real pools: 1347 / 450 images of load_digits, the test pool never depends on the seed.
    train_images, train_labels = sd._load_digit_pool(True)
    test_images, test_labels = sd._load_digit_pool(False)
    assert (len(train_images), len(test_images)) == (1347, 450)
    assert np.bincount(test_labels).min() >= 44
    flat_train = train_images.reshape(len(train_images), -1)
    shared = (flat_train[:, None, :] == test_images.reshape(len(test_images), -1)[None]).all(-1)
    assert shared.sum() == 0  # all 1797 load_digits images are distinct, so no image is in both


def test_marker_skips_and_config_change_regenerates(tmp_path: Path) -> None:
    root = tmp_path / "data"
    config = SyntheticDigitsConfig(n_train=6, n_test=4, seed=0)
    first = generate_synthetic_nmnist(root, config)
    assert first.regenerated and first.n_train == 6 and first.events_per_sample_min > 1000
    record = json.loads((root / ".complete").read_text())
    assert record["hash"] == sd.config_hash(config) == first.config_hash
    assert not (root / ".generating").exists()
    stamp = {p: p.stat().st_mtime_ns for p in root.rglob("*.bin")}
    second = generate_synthetic_nmnist(root, config)
    assert not second.regenerated
    assert second.events_per_sample_mean == first.events_per_sample_mean
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.bin")} == stamp
    changed = generate_synthetic_nmnist(root, SyntheticDigitsConfig(n_train=3, n_test=2, seed=0))
    assert changed.regenerated
    assert len(read_synthetic_nmnist_split(root, True)) == 3
    assert len(read_synthetic_nmnist_split(root, False)) == 2
    # A deleted file is noticed and the set is rebuilt.
    next(root.rglob("*.bin")).unlink()
    assert generate_synthetic_nmnist(root, SyntheticDigitsConfig(n_train=3, n_test=2, seed=0)).regenerated


def test_refuses_to_overwrite_a_foreign_dataset(tmp_path: Path) -> None:
    (tmp_path / "Train" / "0").mkdir(parents=True)
    (tmp_path / "Train" / "0" / "00000.bin").write_bytes(b"\x01\x02\x00\x00\x05")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        generate_synthetic_nmnist(tmp_path, SyntheticDigitsConfig(n_train=2, n_test=2))
    assert (tmp_path / "Train" / "0" / "00000.bin").exists()


def test_split_listing_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="Test"):
        read_synthetic_nmnist_split(tmp_path, train=False)
    (tmp_path / "Train" / "seven").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"named 0-9.*seven"):
        read_synthetic_nmnist_split(tmp_path, train=True)
    (tmp_path / "Train" / "seven").rmdir()
    (tmp_path / "Train" / "7").mkdir()
    with pytest.raises(FileNotFoundError, match="no .bin files"):
        read_synthetic_nmnist_split(tmp_path, train=True)


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="n_train"):
        SyntheticDigitsConfig(n_train=0)
    with pytest.raises(ValueError, match="background < foreground"):
        SyntheticDigitsConfig(background=0.9, foreground=0.5)
    with pytest.raises(ValueError, match="frame_interval_us"):
        SyntheticDigitsConfig(saccade_duration_us=500, frame_interval_us=1000)


def test_render_matches_scipy_bilinear_and_saccade_vertices() -> None:
    rng = np.random.default_rng(0)
    images = rng.random((3, 28, 28))
    offsets = rng.uniform(-3, 9, size=(4, 3, 2))
    frames = sd._render(images, offsets, SensorSize(34, 34, 2))
    rows, cols = np.meshgrid(np.arange(34), np.arange(34), indexing="ij")
    for n in range(4):
        for b in range(3):
            expected = map_coordinates(
                images[b], [rows - offsets[n, b, 1], cols - offsets[n, b, 0]], order=1, mode="grid-constant"
            )
            np.testing.assert_allclose(frames[n, b], expected, atol=1e-5)
    times, shift = sd._saccade_path(
        SyntheticDigitsConfig(saccade_duration_us=30_000, frame_interval_us=1_000)
    )
    assert times[0] == 0 and times[-1] == 90_000 and len(times) == 91
    np.testing.assert_allclose(shift[[0, 30, 60, 90]], [[0, 0], [3.5, 7], [7, 0], [0, 0]])


@pytest.mark.slow
def test_classes_are_separable_by_a_linear_readout(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    config = SyntheticDigitsConfig(n_train=300, n_test=100, seed=0)
    generate_synthetic_nmnist(tmp_path, config)

    def features(train: bool) -> tuple[np.ndarray, np.ndarray]:
        rows, labels = [], []
        for path, label in read_synthetic_nmnist_split(tmp_path, train):
            events = read_nmnist_bin(path)
            third = np.minimum(events["t"] // config.saccade_duration_us, 2)
            counts = np.zeros((3, 2, 34, 34))
            np.add.at(counts, (third, events["p"], events["y"], events["x"]), 1)
            rows.append(np.log1p(counts.ravel()))
            labels.append(label)
        return np.array(rows), np.array(labels)

    x_train, y_train = features(True)
    x_test, y_test = features(False)
    accuracy = LogisticRegression(max_iter=300).fit(x_train, y_train).score(x_test, y_test)
    assert accuracy >= 0.8


def test_mnist_standin_images_have_mnist_statistics() -> None:
    from event_lightning.data.standins.mnist import synthetic_digits

    images, labels = synthetic_digits()
    ink = images / 255.0
    assert images.shape == (1797, 28, 28) and images.dtype == np.uint8 and set(labels.tolist()) == set(range(10))
    assert abs(ink.mean() - 0.1307) < 0.01 and abs(ink.std() - 0.3081) < 0.015
    # the ink stays inside MNIST's 20x20 box
    assert ink.any(axis=1).sum(axis=1).max() <= 20 and ink.any(axis=2).sum(axis=1).max() <= 20
