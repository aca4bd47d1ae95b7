"""MNIST IDX reading, the scikit-learn stand-in, and the rendered transformation sequences."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from event_lightning.data.datasets.mnist import (
    DEFAULT_ANGLES,
    DEFAULT_SCALES,
    MNISTSequenceDataModule,
    SequenceSpec,
    hue_set,
    load_mnist_split,
    render_sequences,
)
from event_lightning.data.loading.image_transforms import (
    adjust_hue,
    grey_to_red,
    hsv_to_rgb,
    perspective_matrix,
    rgb_to_hsv,
    rotation_scale_matrix,
    warp_homography,
)
from event_lightning.data.loading.mnist_idx import IDXFormatError, read_idx, write_idx
from event_lightning.data.standins.mnist import write_synthetic_mnist


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mnist")
    write_synthetic_mnist(root)
    return root


def test_idx_round_trip_and_gzip(tmp_path: Path) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / "x-idx3-ubyte", images)
    assert path.read_bytes()[:4] == b"\x00\x00\x08\x03"
    assert np.array_equal(read_idx(path, expected_ndim=3), images)
    gz = tmp_path / "x-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert np.array_equal(read_idx(gz), images)
    floats = np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3)
    assert np.array_equal(read_idx(write_idx(tmp_path / "f", floats)), floats)


def test_idx_errors_name_the_file(tmp_path: Path) -> None:
    good = write_idx(tmp_path / "good", np.zeros((4, 5, 5), dtype=np.uint8)).read_bytes()
    bad_magic = tmp_path / "bad-magic"
    bad_magic.write_bytes(b"\x12\x34" + good[2:])
    with pytest.raises(IDXFormatError, match=r"bad-magic.*magic number 0x12340803"):
        read_idx(bad_magic)
    truncated = tmp_path / "truncated"
    truncated.write_bytes(good[:-7])
    with pytest.raises(
        IDXFormatError, match=r"truncated.*truncated; shape \(4, 5, 5\).*needs 100 data bytes, found 93"
    ):
        read_idx(truncated)
    short_header = tmp_path / "short-header"
    short_header.write_bytes(good[:9])
    with pytest.raises(IDXFormatError, match="short-header: truncated header"):
        read_idx(short_header)
    with pytest.raises(IDXFormatError, match=r"good: expected a 1-D IDX array, the header says 3-D"):
        read_idx(tmp_path / "good", expected_ndim=1)
    not_gzip = tmp_path / "fake.gz"
    not_gzip.write_bytes(good)
    with pytest.raises(IDXFormatError, match="fake.gz: not a readable gzip"):
        read_idx(not_gzip)


def test_missing_and_mismatched_mnist_files(tmp_path: Path, synthetic_root: Path) -> None:
    with pytest.raises(FileNotFoundError, match="(?s)train-images-idx3-ubyte.*synthetic true"):
        load_mnist_split(tmp_path, "train")
    raw = tmp_path / "MNIST" / "raw"
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / name).parent.mkdir(parents=True, exist_ok=True)
        (raw / name).write_bytes((synthetic_root / "MNIST" / "raw" / name).read_bytes())
    write_idx(raw / "t10k-labels-idx1-ubyte", np.zeros(5, dtype=np.uint8))
    with pytest.raises(IDXFormatError, match="holds 297 images but .*t10k-labels-idx1-ubyte holds 5 labels"):
        load_mnist_split(tmp_path, "test")


def test_synthetic_stand_in_is_read_by_the_real_reader(synthetic_root: Path) -> None:
    train_images, train_labels = load_mnist_split(synthetic_root, "train")
    test_images, test_labels = load_mnist_split(synthetic_root, "test")
    assert train_images.shape == (1500, 28, 28) and test_images.shape == (297, 28, 28)
    assert train_images.dtype == np.uint8 and set(np.unique(train_labels)) == set(range(10))
    # Digits fit a 20x20 box whose centre of mass is the canvas centre, like MNIST's.
    inked = train_images > 0
    assert inked.any(axis=1).sum(axis=1).max() <= 20 and inked.any(axis=2).sum(axis=1).max() <= 20
    mass = train_images / train_images.sum(axis=(1, 2), keepdims=True)
    assert np.abs(mass.sum(axis=1) @ np.arange(28) - 13.5).max() <= 0.6
    assert train_images.max() == 255 and train_images.mean() > 20


def test_rotation_by_360_degrees_returns_the_first_frame() -> None:
    torch.manual_seed(0)
    digits = torch.rand(3, 1, 28, 28)
    params = torch.tensor([[0.0, 1.0, 0.5], [360.0, 1.0, 0.5 + 2 * math.pi]]).expand(3, 2, 3)
    frames = render_sequences(digits, params, torch.zeros(3, dtype=torch.long), colour=True)
    assert frames.shape == (3, 2, 3, 28, 28)
    torch.testing.assert_close(frames[:, 1], frames[:, 0], atol=1e-5, rtol=0)
    torch.testing.assert_close(frames[:, 0, 0], adjust_hue(grey_to_red(digits), torch.full((3,), 0.5))[:, 0])


def test_colour_frames_equal_warp_then_hue_rotation_of_the_red_digit() -> None:
    torch.manual_seed(2)
    digits = torch.rand(2, 1, 28, 28)
    params = torch.stack(
        [torch.rand(2, 5) * 360, 0.6 + 0.6 * torch.rand(2, 5), (torch.rand(2, 5) - 0.5) * 2 * math.pi], -1
    )
    kind = torch.tensor([0, 1])
    frames = render_sequences(digits, params, kind, colour=True)
    matrices = torch.cat(
        [rotation_scale_matrix(params[0, :, 0], params[0, :, 1], 28, 28), perspective_matrix(params[1, :, 0], 28, 28)]
    )
    red = grey_to_red(digits).repeat_interleave(5, dim=0)
    expected = adjust_hue(warp_homography(red, matrices), params[..., 2].reshape(-1)).view(2, 5, 3, 28, 28)
    torch.testing.assert_close(frames, expected, atol=1e-5, rtol=0)


def test_rotation_and_scale_geometry() -> None:
    image = torch.zeros(1, 1, 29, 29)
    image[0, 0, 14, 20] = 1.0  # 6 pixels right of the centre (14, 14)
    turned = warp_homography(image, rotation_scale_matrix(torch.tensor([90.0]), torch.tensor([1.0]), 29, 29))
    assert turned[0, 0, 8, 14] == pytest.approx(1.0, abs=1e-5)  # counter-clockwise: now 6 pixels above
    scaled = warp_homography(image, rotation_scale_matrix(torch.tensor([0.0]), torch.tensor([0.5]), 29, 29))
    # dst(p) = src(M^-1 p): the pixel 3 right of the centre now samples the one 6 right.
    assert scaled[0, 0, 14, 17] == pytest.approx(1.0, abs=1e-5)
    assert float(scaled.sum()) == pytest.approx(1.0, abs=1e-4)


def test_hue_rotation() -> None:
    torch.manual_seed(1)
    rgb = torch.rand(2, 3, 5, 5)
    torch.testing.assert_close(hsv_to_rgb(rgb_to_hsv(rgb)), rgb, atol=1e-5, rtol=0)
    red = grey_to_red(torch.rand(1, 1, 5, 5))
    green = adjust_hue(red, torch.tensor([2 * math.pi / 3]))
    torch.testing.assert_close(green, red[:, [1, 0, 2]], atol=1e-5, rtol=0)
    cyan = adjust_hue(red, torch.tensor([-math.pi]))  # colour 0 degrees of the reference's set
    torch.testing.assert_close(
        cyan, torch.cat([torch.zeros_like(red[:, :1]), red[:, :1], red[:, :1]], 1), atol=1e-5, rtol=0
    )


def test_perspective_identity_at_zero_and_reference_matrix() -> None:
    assert torch.equal(perspective_matrix(torch.tensor([0.0]), 28, 28)[0], torch.eye(3))
    # A2 T R_y R_z A1 by hand for 40 degrees.
    g = math.radians(40.0)
    f = math.hypot(28, 28) / (2 * math.sin(g))
    a1 = np.array([[1, 0, -14], [0, 1, -14], [0, 0, 1], [0, 0, 1]], dtype=float)
    ry = np.array([[math.cos(g), 0, -math.sin(g), 0], [0, 1, 0, 0], [math.sin(g), 0, math.cos(g), 0], [0, 0, 0, 1]])
    rz = np.array([[math.cos(g), -math.sin(g), 0, 0], [math.sin(g), math.cos(g), 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    t = np.eye(4)
    t[2, 3] = f
    a2 = np.array([[f, 0, 14, 0], [0, f, 14, 0], [0, 0, 1, 0]])
    expected = a2 @ t @ ry @ rz @ a1
    np.testing.assert_allclose(
        perspective_matrix(torch.tensor([40.0]), 28, 28)[0].double().numpy(), expected, rtol=1e-5
    )


def test_single_transformation_sequences() -> None:
    spec = SequenceSpec("single", tuple(DEFAULT_ANGLES), hue_set(DEFAULT_ANGLES), tuple(DEFAULT_SCALES))
    rng = np.random.default_rng(0)
    moving_counts = np.zeros(3, dtype=int)
    for _ in range(60):
        params = spec.sample(rng)
        assert params.shape == (18, 3)
        moving = [int(np.unique(params[:, i]).size > 1) for i in range(3)]
        assert sum(moving) == 1  # exactly one transformation changes
        column = moving.index(1)
        moving_counts[column] += 1
        steps = np.diff(params[:, 0]) % 360 if column == 0 else None
        if column == 0:
            assert np.allclose(steps, 20.0)  # rotation steps 20 degrees per frame, cyclically
        if column == 1:
            np.testing.assert_allclose(np.sort(params[:, 1]), np.sort(DEFAULT_SCALES), rtol=1e-6)
    assert (moving_counts > 5).all()
    dual = SequenceSpec("dual", tuple(DEFAULT_ANGLES), hue_set(DEFAULT_ANGLES), (1.0,)).sample(rng)
    assert np.allclose(np.diff(dual[:, 0]) % 360, 20.0) and np.allclose(dual[:, 1], 1.0)
    assert np.allclose(np.diff(dual[:, 2]) % (2 * np.pi), np.radians(20.0))
    with pytest.raises(ValueError, match="scale_set has 3 values"):
        SequenceSpec("single", tuple(DEFAULT_ANGLES), (0.0,), (1.0, 2.0, 3.0))


def test_datamodule_batches(synthetic_root: Path) -> None:
    dm = MNISTSequenceDataModule(root=str(synthetic_root), synthetic=True, batch_size=4, eval_sequence="perspective")
    assert dm.n_time_steps == 18 and dm.image_shape == (3, 28, 28)
    dm.setup("fit")
    assert len(dm.datasets["train"]) == 1200 and len(dm.datasets["val"]) == 300
    raw = next(iter(dm.train_dataloader()))
    x, labels = dm.on_after_batch_transfer(raw, 0)
    assert x.shape == (4, 18, 3, 28, 28) and labels.shape == (4,)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    val_a = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)[0]
    val_b = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)[0]
    torch.testing.assert_close(val_a, val_b)  # fixed evaluation sequences
    assert int(next(iter(dm.val_dataloader()))[3][0]) == 1  # perspective views for evaluation
    grey = MNISTSequenceDataModule(
        root=str(synthetic_root), synthetic=True, batch_size=8, angle_set=[0], colour_set=[0], scale_set=[1]
    )
    grey.setup("fit")
    raw = next(iter(grey.train_dataloader()))
    x, _ = grey.on_after_batch_transfer(raw, 0)
    assert grey.n_time_steps == 1 and x.shape == (8, 1, 1, 28, 28)
    torch.testing.assert_close(x[:, 0], raw[0].float() / 255, atol=1e-5, rtol=0)  # plain grey digits
