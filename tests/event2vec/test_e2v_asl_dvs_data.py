"""ASL-DVS DataModule on the synthetic stand-in: layout, labels, split, repeats, caches, bad files."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from tonic.datasets import ASLDVS as TonicASLDVS

from event_lightning.data.datasets.asl_dvs import ASLDVSDataModule, event_reader, find_asl_dvs_files, split_per_class
from event_lightning.data.loading.event_samplers import pad_collate
from event_lightning.data.loading.event_sequences import EventFileDataset, PackedEventDataset
from event_lightning.data.standins.asl_dvs import SyntheticASLConfig, write_synthetic_asl_dvs
from event_lightning.events.core import EventFormatError, make_events
from event_lightning.events.formats.asl_dvs_mat import ASL_DVS_CLASSES
from event_lightning.events.formats.spikingjelly_npz import read_spikingjelly_npz, write_spikingjelly_npz

SMALL = SyntheticASLConfig(num_classes=3, samples_per_class=10, events_per_sample=400, short_fraction=0.3)


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("asl_small")
    write_synthetic_asl_dvs(root, SMALL)
    return root


def _module(root, **kwargs):
    kwargs = {"batch_size": 4, "num_workers": 0, "seed": 0, "synthetic": SMALL, **kwargs}
    dm = ASLDVSDataModule(root=str(root), **kwargs)
    dm.setup("fit")
    return dm


def test_layout_and_labels(small_root):
    paths, labels = find_asl_dvs_files(small_root, "npz", ASL_DVS_CLASSES[:3])
    assert [p.relative_to(small_root).as_posix() for p in paths[:2]] == [
        "events_np/a/a_0000.npz",
        "events_np/a/a_0001.npz",
    ]
    assert labels.tolist() == [0] * 10 + [1] * 10 + [2] * 10
    # root may also be the events_np folder itself, as in the reference's config
    assert find_asl_dvs_files(small_root / "events_np", "npz", ASL_DVS_CLASSES[:3])[0] == paths
    with pytest.raises(FileNotFoundError, match=r"(?s)letter\(s\) \['d'\].*events_np/<letter>"):
        find_asl_dvs_files(small_root, "npz", ASL_DVS_CLASSES[:4])


def test_split_per_class_in_sorted_order():
    labels = np.array([0] * 10 + [1] * 5 + [2] * 7)
    train, val = split_per_class(labels, 0.8)
    assert train.tolist() == list(range(8)) + list(range(10, 14)) + list(range(15, 20))
    assert val.tolist() == [8, 9, 14, 20, 21]
    shuffled = np.array([2, 0, 1, 0, 2, 1, 0, 0, 0])
    train, val = split_per_class(shuffled, 0.5)
    # class 0 at 1, 3, 6, 7, 8 -> trains on 1, 3; class 1 at 2, 5 -> 2; class 2 at 0, 4 -> 0
    assert train.tolist() == [0, 1, 2, 3] and val.tolist() == [4, 5, 6, 7, 8]


def test_no_file_in_train_and_val_and_repeats_after_split(small_root):
    dm = _module(small_root, packed=False)
    assert len(dm.train_files) == 24 and len(dm.val_files) == 6
    assert not set(dm.train_files) & set(dm.val_files)
    assert [p.name for p in dm.val_files] == [f"{c}_000{i}.npz" for c in "abc" for i in (8, 9)]
    assert len(dm.val_set) == 4 * 6 and len(dm.train_set) == 24
    read = []
    reader = dm.val_set.reader
    dm.val_set.reader = lambda path: read.append(path) or reader(path)
    labels = torch.cat([b.label for b in dm.val_dataloader()])
    assert len(read) == 24 and set(read) == set(dm.val_files)
    assert all(read.count(p) == 4 for p in dm.val_files)
    assert labels.tolist() == [0, 0, 1, 1, 2, 2] * 4
    # each pass draws fresh events from recordings longer than sample_number
    long = next(i for i, p in enumerate(dm.val_files) if len(read_spikingjelly_npz(p)) > 300)
    first = dm.val_set[long]
    again = dm.val_set[long + 6]
    assert first.label == again.label and not torch.equal(first.t, again.t)


def test_packed_matches_file_reading(small_root):
    packed = _module(small_root, packed=True, norm_t="dataset-wise", sample_number=64)
    files = _module(small_root, packed=False, norm_t="dataset-wise", sample_number=64)
    assert packed.t_max_used == files.t_max_used
    for a, b in ((packed.train_set, files.train_set), (packed.val_set, files.val_set)):
        assert isinstance(a, PackedEventDataset) and isinstance(b, EventFileDataset)
        a.reseed(5)
        b.reseed(5)
        order = [3, 0, 7, 3, 11, 1]
        got = a.__getitems__(order)
        want = pad_collate([b[i] for i in order], length=64)
        for field in got._fields:
            torch.testing.assert_close(getattr(got, field), getattr(want, field), msg=field)


def test_t_max_from_train_split_only(tmp_path):
    root = tmp_path / "asl"
    write_synthetic_asl_dvs(root, SMALL)
    spans = {}
    for path in sorted((root / "events_np").glob("*/*.npz")):
        events = read_spikingjelly_npz(path)
        spans[path.name] = int(events["t"][-1] - events["t"][0])
    # make a validation recording the longest of all
    long = make_events([1, 2], [3, 4], [0, 10 * max(spans.values())], [0, 1])
    write_spikingjelly_npz(root / "events_np" / "b" / "b_0009.npz", long)
    dm = _module(root)
    train_names = {p.name for p in dm.train_files}
    assert dm.t_max_used == max(v for k, v in spans.items() if k in train_names)
    batch = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    t = batch.t[batch.valid_mask]
    assert t.dtype == torch.float32 and t.min() >= 0 and t.max() <= 1
    assert _module(root, t_max=123.0).t_max_used == 123.0


def test_norm_t_modes_and_short_recordings_pad(small_root):
    dm = _module(small_root, norm_t="sample-wise", batch_size=30)
    batch = dm.on_after_batch_transfer(dm.train_set.__getitems__(list(range(24))), 0)
    assert batch.t.shape == (24, 255)  # every batch padded to sample_number
    lengths = batch.valid_mask.sum(1)
    assert lengths.max() == 255 and lengths.min() < 255  # short recordings kept whole and padded
    last = batch.t.gather(1, (lengths - 1)[:, None])[:, 0]
    torch.testing.assert_close(last, torch.ones(24))
    assert torch.all(batch.t[~batch.valid_mask] == -1) and torch.all(batch.x[~batch.valid_mask] == -1)
    raw = _module(small_root, norm_t="none").train_set[0]
    assert raw.t.dtype == torch.int64 and raw.t[0] == 0
    short = _module(small_root, norm_t="none", sample_number=64)
    batch = short.train_set.__getitems__(list(range(24)))
    assert batch.t.dtype == torch.int32 and batch.t.shape == (24, 64)
    normalised = short.on_after_batch_transfer(batch, 0)
    assert normalised.t.dtype == torch.int64 and torch.equal(normalised.t, batch.t.long())


def test_workers_and_cache_reuse(small_root):
    dm = ASLDVSDataModule(root=str(small_root), synthetic=SMALL, batch_size=4, num_workers=2, persistent_workers=False)
    dm.prepare_data()
    dm.setup("fit")
    caches = sorted((small_root / "packed").iterdir())
    batches = [b for _, b in zip(range(3), dm.train_dataloader(), strict=False)]
    # the bus dtypes: the smallest exact integers; the float times are made on the device
    dtypes = {(b.x.dtype, b.y.dtype, b.p.dtype, b.t.dtype, b.valid_mask.dtype) for b in batches}
    assert dtypes == {(torch.int16, torch.int16, torch.int8, torch.int32, torch.bool)}
    assert all(b.x.shape == (4, 255) for b in batches)
    assert all(b.valid_mask.any(1).all() for b in batches)
    _module(small_root)
    assert sorted((small_root / "packed").iterdir()) == caches  # the same cache, not rebuilt


def test_mat_release_labels_contiguous_and_same_events(tmp_path):
    config = SyntheticASLConfig(num_classes=24, samples_per_class=2, events_per_sample=300, short_fraction=0.0)
    write_synthetic_asl_dvs(tmp_path / "mat", config, file_format="mat")
    write_synthetic_asl_dvs(tmp_path / "npz", config, file_format="npz")
    paths, labels = find_asl_dvs_files(tmp_path / "mat", "mat")
    assert labels.tolist() == [i // 2 for i in range(48)]
    k = paths[labels.tolist().index(9)]
    assert k.parent.name == "k" and TonicASLDVS.int_classes["k"] == 10  # tonic leaves a gap at j; we do not
    mat = _module(tmp_path / "mat", file_format="mat", t_max=5e5, synthetic=config)
    npz = _module(tmp_path / "npz", file_format="npz", t_max=5e5, synthetic=config)
    assert mat.num_classes == 24
    mat.train_set.reseed(1)
    npz.train_set.reseed(1)
    a, b = mat.train_set.__getitems__(range(24)), npz.train_set.__getitems__(range(24))
    for field in a._fields:
        torch.testing.assert_close(getattr(a, field), getattr(b, field), msg=field)
    flipped = event_reader("mat", flip="y")(k)
    np.testing.assert_array_equal(flipped["y"], 179 - event_reader("mat")(k)["y"])


def _copy(small_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(small_root / "events_np", root / "events_np")
    shutil.copy(small_root / "synthetic_asl_dvs.json", root)
    return root


@pytest.mark.parametrize("packed", [True, False])
def test_bad_files_are_named(small_root, tmp_path, packed):
    root = _copy(small_root, tmp_path)
    bad = root / "events_np" / "b" / "b_0003.npz"
    np.savez(bad, t=np.arange(5), x=np.arange(5), y=np.arange(5))
    with pytest.raises(EventFormatError, match=r"b_0003\.npz.*missing key\(s\) \['p'\]"):
        dm = _module(root, packed=packed, t_max=1e5)
        [dm.train_set[i] for i in range(len(dm.train_set))]
    write_spikingjelly_npz(bad, make_events([5, 250], [5, 5], [0, 10], [0, 1]))
    with pytest.raises(EventFormatError, match=r"b_0003\.npz.*x outside \[0, 240\)"):
        dm = _module(root, packed=packed, t_max=1e5)
        [dm.train_set[i] for i in range(len(dm.train_set))]


def test_empty_recording(small_root, tmp_path):
    root = _copy(small_root, tmp_path)
    empty = root / "events_np" / "c" / "c_0000.npz"
    write_spikingjelly_npz(empty, make_events([], [], [], []))
    with pytest.raises(EventFormatError, match=r"c_0000\.npz.*no events"):
        _module(root)
    dm = _module(root, allow_empty=True)
    index = dm.train_files.index(empty)
    batch = dm.train_set.__getitems__([index, 0])
    assert not batch.valid_mask[0].any() and batch.valid_mask[1].any()
    assert torch.all(batch.t[0] == -1)


def test_synthetic_never_overwrites_real_data(tmp_path):
    (tmp_path / "events_np" / "a").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="real dataset"):
        write_synthetic_asl_dvs(tmp_path, SMALL)


def test_constructor_checks():
    with pytest.raises(ValueError, match="sampler"):
        ASLDVSDataModule(sampler="nope")
    with pytest.raises(ValueError, match="norm_t"):
        ASLDVSDataModule(norm_t="batch-wise")
    with pytest.raises(ValueError, match="file_format"):
        ASLDVSDataModule(file_format="aedat")
    dm = ASLDVSDataModule(synthetic=SyntheticASLConfig(num_classes=5))
    assert dm.num_classes == 5 and dm.sensor_size.as_list() == [240, 180, 2]
    assert ASLDVSDataModule().num_classes == 24
