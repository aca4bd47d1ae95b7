"""dSprites: the procedural renderer against its factor definitions, the npz reader, the sequences."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from event_lightning.data.datasets.dsprites import DSpritesSequenceDataModule
from event_lightning.data.loading.dsprites_npz import (
    DSPRITES_FILE,
    DSpritesFormatError,
    latent_values,
    load_dsprites_subset,
    subset_classes,
    subset_grid,
)
from event_lightning.data.standins.dsprites import render_dsprites, write_dsprites_npz

SQUARE, ELLIPSE, HEART = 0, 1, 2


def render_one(shape: int, scale: int, orientation: int, pos_x: int, pos_y: int) -> np.ndarray:
    return render_dsprites(np.array([[0, shape, scale, orientation, pos_x, pos_y]]))[0]


def moments(image: np.ndarray) -> tuple[float, float, float, float]:
    """Area, centroid (x, y) in pixel-centre coordinates, principal-axis angle (y up, radians mod pi)."""
    rows, cols = np.nonzero(image)
    x, y = cols + 0.5, rows + 0.5
    cx, cy = x.mean(), y.mean()
    dx, dy_up = x - cx, -(y - cy)
    angle = 0.5 * math.atan2(2 * (dx * dy_up).mean(), (dx**2).mean() - (dy_up**2).mean())
    return float(len(rows)), float(cx), float(cy), angle % math.pi


@pytest.mark.parametrize("pos_x,pos_y", [(0, 0), (31, 5), (12, 31), (20, 20)])
def test_position_factors_place_the_centre(pos_x: int, pos_y: int) -> None:
    for shape in (SQUARE, ELLIPSE):
        _, cx, cy, _ = moments(render_one(shape, 5, 0, pos_x, pos_y))
        assert cx == pytest.approx(16 + 32 * pos_x / 31, abs=0.5)  # binary pixels: half a pixel
        assert cy == pytest.approx(16 + 32 * pos_y / 31, abs=0.5)  # y grows downwards with posY


@pytest.mark.parametrize("scale_class", [0, 3, 5])
def test_scale_factor_sets_the_size(scale_class: int) -> None:
    radius = 10 * (0.5 + 0.1 * scale_class)
    assert moments(render_one(SQUARE, scale_class, 0, 15, 15))[0] == pytest.approx(4 * radius**2, rel=0.08)
    assert moments(render_one(ELLIPSE, scale_class, 0, 15, 15))[0] == pytest.approx(math.pi * radius**2 / 2, rel=0.08)


@pytest.mark.parametrize("orientation_class", [0, 3, 10, 17, 25])
def test_orientation_factor_turns_the_shape_counter_clockwise(orientation_class: int) -> None:
    theta = 2 * math.pi * orientation_class / 39
    angle = moments(render_one(ELLIPSE, 5, orientation_class, 15, 15))[3]
    difference = (angle - theta) % math.pi
    assert min(difference, math.pi - difference) < math.radians(3)


def test_heart_is_mirror_symmetric_and_points_down() -> None:
    heart = render_one(HEART, 5, 0, 0, 15)  # centre x = 16: a pixel boundary
    assert np.array_equal(heart[:, :16], heart[:, 16:32][:, ::-1])
    rows = np.nonzero(heart.any(axis=1))[0]
    top, bottom = heart[rows[0]], heart[rows[-1]]
    assert np.count_nonzero(np.diff(top.astype(int)) == 1) == 2  # two lobes on top
    assert np.count_nonzero(bottom) <= 2  # a tip at the bottom
    full_turn = render_one(HEART, 5, 39, 0, 15)  # orientation 2 pi
    assert np.count_nonzero(full_turn != heart) <= 2


def test_renderer_output_is_binary_and_values_follow_dsprites() -> None:
    classes = np.array([[0, 2, 5, 39, 31, 31], [0, 0, 0, 0, 0, 0]])
    images = render_dsprites(classes)
    assert images.dtype == np.uint8 and set(np.unique(images)) <= {0, 1}
    np.testing.assert_allclose(latent_values(classes)[0], [1, 3, 1.0, 2 * np.pi, 1.0, 1.0])
    np.testing.assert_allclose(latent_values(classes)[1], [1, 1, 0.5, 0.0, 0.0, 0.0])


def small_subset() -> list[np.ndarray]:
    return subset_classes(10, [0, 1, 0, 0, 0], [1, 1, 2, 2, 2])


def test_npz_round_trip_and_subset_layout(tmp_path: Path) -> None:
    kept = small_subset()
    assert [k.tolist() for k in kept] == [[0, 1, 2], [1, 2, 3, 4, 5], [0, 2, 4, 6, 8], [0, 2, 4, 6, 8], [0, 2, 4, 6, 8]]
    rows = subset_grid(kept)
    rng = np.random.default_rng(0)
    shuffled = rows[rng.permutation(len(rows))]  # the reader must not depend on row order
    path = write_dsprites_npz(tmp_path / DSPRITES_FILE, shuffled)
    grid = load_dsprites_subset(path, kept)
    assert grid.shape == (3, 5, 5, 5, 5, 64, 64)
    assert np.array_equal(grid[2, 4, 3, 1, 0], render_one(2, 5, 6, 2, 0))
    archive = np.load(path, allow_pickle=True)
    assert archive["metadata"][()]["latents_sizes"].tolist() == [1, 3, 6, 40, 32, 32]
    np.testing.assert_allclose(archive["latents_values"], latent_values(shuffled))


def test_npz_errors_name_the_file_and_problem(tmp_path: Path) -> None:
    kept = small_subset()
    not_zip = tmp_path / "broken.npz"
    not_zip.write_bytes(b"not a zip archive")
    with pytest.raises(DSpritesFormatError, match=r"broken.npz: not a readable \.npz archive"):
        load_dsprites_subset(not_zip, kept)
    no_classes = tmp_path / "no_classes.npz"
    np.savez(no_classes, imgs=np.zeros((2, 64, 64), np.uint8))
    with pytest.raises(DSpritesFormatError, match=r"no_classes.npz: missing array\(s\) \['latents_classes'\]"):
        load_dsprites_subset(no_classes, kept)
    wrong_size = tmp_path / "wrong_size.npz"
    np.savez(wrong_size, imgs=np.zeros((2, 32, 32), np.uint8), latents_classes=np.zeros((2, 6), np.int64))
    with pytest.raises(DSpritesFormatError, match=r"wrong_size.npz: imgs must be \[N, 64, 64\], found \(2, 32, 32\)"):
        load_dsprites_subset(wrong_size, kept)
    mismatch = tmp_path / "mismatch.npz"
    np.savez(mismatch, imgs=np.zeros((2, 64, 64), np.uint8), latents_classes=np.zeros((3, 6), np.int64))
    with pytest.raises(DSpritesFormatError, match=r"mismatch.npz: latents_classes must be \[2, 6\]"):
        load_dsprites_subset(mismatch, kept)
    partial = write_dsprites_npz(tmp_path / "partial.npz", subset_grid(kept)[:-3])
    with pytest.raises(DSpritesFormatError, match=r"partial.npz: 3 of the 1875 images .* missing"):
        load_dsprites_subset(partial, kept)
    with pytest.raises(FileNotFoundError, match=f"put DeepMind's {DSPRITES_FILE}"):
        DSpritesSequenceDataModule(root=str(tmp_path / "empty")).setup("fit")


def test_sequences_step_one_factor_cyclically(tmp_path: Path) -> None:
    dm = DSpritesSequenceDataModule(
        root=str(tmp_path), synthetic=True, batch_size=4, seq_len=7, max_transform_len=10, n_val_sequences=16
    )
    assert dm.n_time_steps == 7
    dm.setup("fit")
    assert (dm.data_root / DSPRITES_FILE).is_file() and dm.data_root.parent == tmp_path  # a folder per subset
    dataset = dm.datasets["train"]
    assert len(dataset) == 1875
    kept = small_subset()
    seen = set()
    with torch.random.fork_rng():
        # training items draw their factor from torch's global generator (each loader worker's is
        # seeded by Lightning); seeded here, 20 items certainly show all four factors
        torch.manual_seed(0)
        items = [dataset[index] for index in range(0, 1875, 97)]
    for images, factors in items:
        assert images.shape == (7, 1, 64, 64) and factors.shape == (7, 5)
        changing = [f for f in range(5) if len(set(factors[:, f].tolist())) > 1]
        assert len(changing) == 1 and changing[0] in (1, 2, 3, 4)  # scale, orientation, posX, posY; never shape
        f = changing[0]
        seen.add(f)
        assert factors[:, f].tolist() == [(int(factors[0, f]) + t) % 5 for t in range(7)]
        classes = np.concatenate(
            [np.zeros((7, 1), np.int64), np.stack([kept[i][factors[:, i].numpy()] for i in range(5)], 1)], 1
        )
        assert np.array_equal(images[:, 0].numpy(), render_dsprites(classes))
    assert seen == {1, 2, 3, 4}
    x, target = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert x.dtype == torch.float32 and x.shape == (4, 7, 1, 64, 64) and target.shape == (4, 7, 5)
    first = [dm.datasets["val"][i][1] for i in range(3)]
    assert all(torch.equal(a, dm.datasets["val"][i][1]) for i, a in enumerate(first))  # fixed validation
