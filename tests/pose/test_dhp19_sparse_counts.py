"""DHP19 count stacks travel sparse through the DataLoader and become the same dense tensors on the device."""

import shutil

import numpy as np
import pytest
import torch

from event_lightning.cli import main
from event_lightning.data.datasets.dhp19 import DHP19DataModule, collate_dhp19
from event_lightning.data.loading.frame_cache import FrameCache
from event_lightning.data.loading.sparse_counts import (
    SparseCounts,
    collate_sparse,
    densify,
    densify_split,
    from_records,
    sparse_counts,
    to_records,
    to_sparse,
)
from event_lightning.data.standins.dhp19 import SyntheticDHP19Config, write_synthetic_dhp19
from event_lightning.models.pose import PoseHybridCNNSNN

CONFIG = SyntheticDHP19Config(subjects=(1, 13), duration_ms=600, cameras=(2, 3), seed=3)
CLI_SUBJECTS = [1, 2, 13]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dhp19_sparse")
    write_synthetic_dhp19(folder, CONFIG)
    return folder


def _module(root, **kwargs) -> DHP19DataModule:
    defaults = dict(camera_views=[3], cnn_event_count=1500, train_subjects=[1], test_subjects=[13], batch_size=3)
    return DHP19DataModule(root=str(root), **{**defaults, **kwargs})


def _on_device(dm: DHP19DataModule, batch: dict) -> dict:
    """What a Trainer does between the loader and the model."""
    batch = dm.on_before_batch_transfer(batch, 0)
    batch = dm.transfer_batch_to_device(batch, torch.device("cpu"), 0)
    return dm.on_after_batch_transfer(batch, 0)


# ---------------------------------------------------------------- the sparse functions


@pytest.mark.parametrize("high", [0, 1, 255, 256, 32767])
def test_dense_sparse_dense_round_trip_is_exact_in_the_narrowest_dtype(high):
    rng = np.random.default_rng(high)
    counts = rng.integers(0, high + 1, size=(3, 4, 5, 7)) * (rng.random((3, 4, 5, 7)) < 0.3)
    if high:
        counts.flat[11] = high  # the maximum is present
    index, values = to_sparse(counts)
    assert index.dtype == np.int32 and np.array_equal(index, np.flatnonzero(counts))
    assert values.dtype == (np.uint8 if high <= 255 else np.int16)
    assert len(values) == np.count_nonzero(counts)
    sparse = sparse_counts(counts)
    assert sparse.shape == counts.shape and sparse.nnz.tolist() == [len(index)]
    dense = densify(sparse)
    assert dense.dtype == torch.float32 and dense.shape == (1, *counts.shape)
    np.testing.assert_array_equal(dense[0].numpy(), counts.astype(np.float32))


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.int64])
def test_round_trip_of_sparse_cache_sized_arrays_of_every_integer_type(dtype):
    rng = np.random.default_rng(1)
    counts = np.zeros((2, 6, 64, 64), dtype=dtype)
    cells = rng.choice(counts.size, 700, replace=False)
    counts.flat[cells] = rng.integers(1, 200, 700)
    index, values = to_sparse(counts)
    np.testing.assert_array_equal(index, np.flatnonzero(counts))
    np.testing.assert_array_equal(values, counts.ravel()[np.flatnonzero(counts)])
    # views that are not contiguous are read correctly too
    odd = counts[:, 1:5, ::3]
    np.testing.assert_array_equal(densify(sparse_counts(odd))[0].numpy(), odd.astype(np.float32))


@pytest.mark.parametrize("high", [0, 9, 1000])
def test_records_store_in_a_frame_cache_and_come_back_as_the_same_stack(high, tmp_path):
    rng = np.random.default_rng(high)
    counts = (rng.integers(0, high + 1, size=(4, 16, 8)) * (rng.random((4, 16, 8)) < 0.1)).astype(np.int64)
    records = to_records(counts)
    assert records.dtype.names == ("index", "count") and records.dtype.itemsize == (5 if high < 256 else 6)
    cache = FrameCache(tmp_path, "sparse", files=[], params={}, code_version="t")
    cache.store(0, records)
    loaded = cache.load(0, lambda: pytest.fail("the stored entries are read back"))
    np.testing.assert_array_equal(densify(from_records(loaded, counts.shape))[0].numpy(), counts)
    header = cache.path(0).stat().st_size - records.nbytes  # the rest: the packed entries
    assert header in (64, 128, 192)
    with pytest.raises(ValueError, match="leave a stack of shape"):
        from_records(np.array([(512, 1)], dtype=records.dtype), counts.shape)
    with pytest.raises(ValueError, match="expected fields"):
        from_records(np.zeros(3, np.int32), counts.shape)


def test_negative_and_overflowing_counts_and_floats_are_refused_with_the_name():
    with pytest.raises(ValueError, match=r"window 7 must be counts >= 0; found -1"):
        to_sparse(np.array([[0, 3], [-1, 2]]), "window 7")
    with pytest.raises(ValueError, match=r"count of 32768 .*at most 32767"):
        to_sparse(np.array([5, 32768, 0]))
    with pytest.raises(TypeError, match="integer count or float32 array; found dtype float64"):
        to_sparse(np.zeros(3, np.float64))
    index, values = to_sparse(np.zeros((2, 3), np.int64))
    assert index.shape == values.shape == (0,) and values.dtype == np.uint8


def test_float32_stacks_keep_their_values_of_any_sign():
    """Voxel grids (representation: voxel_grid) are signed floats: kept as float32 entries."""
    stack = np.array([[0.0, -1.25, 0.0], [3.5e-3, 0.0, 7.0]], np.float32)
    index, values = to_sparse(stack)
    assert index.tolist() == [1, 3, 5] and values.dtype == np.float32
    counts = from_records(to_records(stack), stack.shape)
    mixed = collate_sparse([counts, sparse_counts(np.array([[0, 2, 0], [0, 0, 1]]))])
    assert mixed.values.dtype == torch.float32
    torch.testing.assert_close(densify(mixed)[0], torch.from_numpy(stack))


def test_a_batch_collates_offsets_widens_dtypes_and_densifies_each_stack():
    rng = np.random.default_rng(2)
    stacks = [rng.integers(0, 4, size=(6, 5, 4)) * (rng.random((6, 5, 4)) < 0.2) for _ in range(3)]
    stacks[1][2, 3, 1] = 300  # int16 in the middle of uint8 samples
    stacks[2][:] = 0  # an empty window
    batch = collate_sparse([sparse_counts(s) for s in stacks])
    assert batch.values.dtype == torch.int16 and batch.nnz.tolist() == [np.count_nonzero(s) for s in stacks]
    expected = np.stack(stacks).astype(np.float32)
    np.testing.assert_array_equal(densify(batch).numpy(), expected)
    for axis in (0, 1, -1):
        length = expected.shape[1:][axis]
        sizes = [1, length - 1] if length > 1 else [1]
        parts = densify_split(batch, sizes, axis=axis)
        cut = np.split(expected, np.cumsum(sizes)[:-1], axis=axis % 3 + 1)
        for part, want in zip(parts, cut, strict=True):
            assert part.is_contiguous()
            np.testing.assert_array_equal(part.numpy(), want)
    with pytest.raises(ValueError, match="must share a shape"):
        collate_sparse([sparse_counts(stacks[0]), sparse_counts(stacks[0][:3])])
    with pytest.raises(ValueError, match="must sum to axis"):
        densify_split(batch, [2, 2], axis=0)


# ---------------------------------------------------------------- DHP19 loaders


def _expected(dataset, batch: dict) -> dict[str, np.ndarray]:
    """Independent dense tensors: each window's count stack from ``_counts``, cut by hand."""
    s = dataset.sampling
    lookup: dict[tuple[int, int], int] = {}
    for k, (_, cam, ms) in enumerate(dataset.index):
        lookup.setdefault((ms, cam), k)  # the first recording with that window
    cams = batch["camera"].tolist()
    out: dict[str, list] = {}
    for ms, cam in zip(batch["ms_start"].tolist(), cams, strict=True):
        views = cam if isinstance(cam, list) else [cam]
        source, _, _ = dataset.index[lookup[(ms, -1 if isinstance(cam, list) else cam)]]
        counts = np.stack([dataset._counts(dataset.sources[source], c, ms) for c in views]).astype(np.float32)
        c = 0
        if s.uses_cnn:
            out.setdefault("cnn_input", []).append(counts[:, : 2 * s.cnn_bins])
            c = 2 * s.cnn_bins
        if s.uses_sequence:
            bins = counts[:, c : c + 2 * s.n_steps]
            out.setdefault("events", []).append(bins.reshape(len(views), s.n_steps, 2, *bins.shape[-2:]))
            c += 2 * s.n_steps
        if s.next_cnn_frame:
            out.setdefault("cnn_input_next", []).append(counts[:, c:])
    stacked = isinstance(cams[0], list)
    return {key: np.stack([v if stacked else v[0] for v in value]) for key, value in out.items()}


@pytest.mark.parametrize(
    "settings, loader",
    [
        (dict(mode="cnn"), "train"),
        (dict(mode="sequence", downsample=2), "train"),
        (dict(mode="hybrid"), "train"),  # with cnn_input_next
        (dict(mode="hybrid", camera_views=[2, 3], stack_test_views=True, eval_batch_size=2), "val"),
        (dict(mode="sequence", camera_views=[2, 3], stack_test_views=True, num_workers=2), "test"),
    ],
)
def test_batches_are_sparse_in_the_loader_and_todays_dense_tensors_on_the_device(root, settings, loader):
    dm = _module(root, **settings)
    dm.setup("fit" if loader != "test" else "test")
    dataset = dm.split(loader if loader != "test" else "test")
    raw = next(iter(getattr(dm, f"{loader}_dataloader")()))
    assert isinstance(raw["counts"], SparseCounts) and not {"cnn_input", "events"} & set(raw)
    assert raw["counts"].values.dtype == torch.uint8 and raw["counts"].index.dtype == torch.int32
    assert raw["counts"].nbytes * 50 < raw["counts"].dense_nbytes  # the point of it all
    batch = _on_device(dm, raw)
    expected = _expected(dataset, batch)
    assert list(batch)[: len(expected)] == list(expected)  # dense entries first, as before
    assert "counts" not in batch and "count_parts" not in batch
    for key, want in expected.items():
        assert batch[key].dtype == torch.float32 and batch[key].is_contiguous()
        np.testing.assert_array_equal(batch[key].numpy(), want)
    size = dm.sensor_size
    views = (2,) if dataset.stack_views else ()
    if "events" in batch:
        assert batch["events"].shape[1:] == (*views, dataset.sampling.n_steps, 2, size.height, size.width)
    # one sample made dense is the same as its row of the batch
    first = dataset.dense_sample(next(k for k, e in enumerate(dataset.index) if e[2] == batch["ms_start"][0]))
    for key in expected:
        torch.testing.assert_close(first[key], batch[key][0], rtol=0, atol=0)


def test_cached_windows_give_the_same_batches(root, tmp_path):
    settings = dict(mode="hybrid", downsample=4, cache_dir=str(tmp_path / "cache"))
    plain = _module(root, mode="hybrid", downsample=4)
    cold, warm = _module(root, **settings), _module(root, **settings)
    for dm in (plain, cold, warm):
        dm.setup("validate")
    batches = [_on_device(dm, next(iter(dm.val_dataloader()))) for dm in (plain, cold, warm)]
    cache = warm.split("val").cache
    assert 0 in cache
    # the cache holds the sparse entries: 5 bytes each behind the .npy header
    assert cache.path(0).stat().st_size <= 256 + 5 * int(
        batches[0]["cnn_input"][0].count_nonzero() + batches[0]["events"][0].count_nonzero()
    )
    for key in ("cnn_input", "events", "landmarks"):
        for other in batches[1:]:
            torch.testing.assert_close(batches[0][key], other[key], equal_nan=True, rtol=0, atol=0)


def test_windows_of_a_recording_broken_after_setup_are_dropped_and_the_rest_densified(root, tmp_path):
    for path in root.iterdir():
        shutil.copy(path, tmp_path / path.name)
    bad = tmp_path / "S16_session1_mov1_events.h5"
    shutil.copy(tmp_path / "S13_session1_mov1_events.h5", bad)
    shutil.copy(tmp_path / "S13_session1_mov1_label.h5", tmp_path / "S16_session1_mov1_label.h5")
    dm = _module(tmp_path, mode="sequence", test_subjects=[13, 16], on_bad_sample="skip", eval_batch_size=64)
    dm.setup("test")
    test = dm.split("test")
    good = sum(1 for i, _, _ in test.index if i == 0)
    assert 0 < good < len(test) <= 64
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    (batch,) = [_on_device(dm, b) for b in dm.test_dataloader()]
    assert batch["events"].shape[0] == len(batch["ms_start"]) == good
    assert len(dm.bad_samples.records(stage="test")) == len(test) - good
    np.testing.assert_array_equal(batch["events"].numpy(), _expected(test, batch)["events"])


def test_collate_refuses_samples_of_different_splits(root):
    dm = _module(root, mode="sequence", test_window_ms=200)
    dm.setup("fit")
    train, val = dm.split("train")[0], dm.split("val")[0]
    with pytest.raises(ValueError, match="different count_parts"):
        collate_dhp19([train, val])


# ---------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def cli_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("dhp19_sparse_cli"))


def _fit(config: str, cli_root: str, save_dir, *extra: str):
    args = [
        "fit",
        "--config",
        config,
        "--trainer.max_epochs",
        "1",
        "--trainer.limit_train_batches",
        "2",  # "1" would read as 1.0, all batches
        "--trainer.limit_val_batches",
        "2",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.logger.init_args.save_dir",
        str(save_dir),
        "--data.init_args.root",
        cli_root,
        "--data.init_args.subjects",
        str(CLI_SUBJECTS),
        "--data.init_args.duration_ms",
        "800",
        "--data.init_args.movements_per_subject",
        "1",
        "--data.init_args.synthetic_cameras",
        "[2, 3]",
        *extra,
    ]
    return main(args)


def _two_batches_fitted(cli) -> None:
    # global_step counts optimiser steps, which the sequence models take several of per batch
    assert cli.trainer.fit_loop.epoch_loop.batch_progress.total.completed == 2
    assert cli.trainer.global_step >= 1 and "val/mpjpe" in cli.trainer.callback_metrics


@pytest.mark.slow
def test_cli_fits_the_synthetic_snn_and_hybrid_configs_for_two_batches(cli_root, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cli = _fit("config/pose_snn_synthetic.yaml", cli_root, tmp_path)
        _two_batches_fitted(cli)
        cnn = tmp_path / "cnn.pt"
        torch.save(PoseHybridCNNSNN(cnn_base_channels=8, base_channels=8).net.cnn.state_dict(), cnn)
        cli = _fit(
            "config/pose_hybrid_cnn_snn_synthetic.yaml",
            cli_root,
            tmp_path,
            "--model.init_args.cnn_checkpoint",
            str(cnn),
        )
        _two_batches_fitted(cli)
    finally:
        torch.set_num_threads(threads)
