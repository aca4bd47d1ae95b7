"""``data.on_bad_sample: raise | skip`` on real small datasets with corrupted files.

Every dataset is written by its synthetic stand-in in the real on-disk format, copied, and two of
its files are broken (one truncated, one overwritten with garbage). ``raise`` must fail naming a
broken file; ``skip`` must yield exactly the good samples, count the broken files (also from
DataLoader worker processes) and report the totals at the end of each epoch.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from event_lightning.callbacks.bad_samples import BadSampleReporter
from event_lightning.data.datasets.asl_dvs import ASLDVSDataModule
from event_lightning.data.datasets.dhp19 import DHP19DataModule
from event_lightning.data.datasets.dvsgesture import DVSGestureDataModule
from event_lightning.data.datasets.nmnist import NMNISTDataModule, NMNISTFramesDataModule
from event_lightning.data.datasets.pokerdvs import PokerDVSDataModule
from event_lightning.data.loading.bad_samples import (
    AllSamplesBadError,
    BadSampleGuard,
    BadSampleLedger,
    BadSampleWarning,
    DropBadSamples,
    SkippedSample,
    check_bad_sample_policy,
)
from event_lightning.data.loading.classification_datamodule import EpochSeededRandomSampler
from event_lightning.data.standins.asl_dvs import SyntheticASLConfig, write_synthetic_asl_dvs
from event_lightning.data.standins.dhp19 import SyntheticDHP19Config, write_synthetic_dhp19
from event_lightning.data.standins.nmnist import (
    SyntheticDigitsConfig,
    generate_synthetic_nmnist,
    read_synthetic_nmnist_split,
)
from event_lightning.data.standins.pokerdvs import SyntheticPokerConfig, generate_synthetic_pokerdvs
from event_lightning.events.core import EventFormatError
from event_lightning.events.formats.dvsgesture_npy import list_dvsgesture_split

DIGITS = SyntheticDigitsConfig(n_train=12, n_test=6, seed=1)
POKER = SyntheticPokerConfig(seed=3, train_per_class=5, test_per_class=5, duration_us=20_000)
ASL = SyntheticASLConfig(num_classes=3, samples_per_class=10, events_per_sample=300, short_fraction=0.0)
GESTURES = {
    "n_classes": 3,
    "train_users": [1],
    "test_users": [24],
    "lightings": ["led", "natural"],
    "duration_us": 60_000,
    "frame_interval_us": 10_000,
}
DHP19 = SyntheticDHP19Config(subjects=(1, 13), duration_ms=400, cameras=(3,), seed=3)


def truncate(path: Path, drop: int = 7) -> Path:
    """Cut the last ``drop`` bytes (a download or a copy that stopped early)."""
    data = path.read_bytes()
    path.write_bytes(data[:-drop])
    return path


def garble(path: Path) -> Path:
    """Replace the content with bytes of no format at all."""
    path.write_bytes(b"this is not an event recording\x00\xff" * 3)
    return path


def labels_of(batches: list, key: str | int) -> list[int]:
    return [int(v) for batch in batches for v in batch[key].tolist()]


# ---------------------------------------------------------------- the option and the machinery


@pytest.mark.parametrize(
    "make",
    [
        lambda: NMNISTFramesDataModule(on_bad_sample="ignore"),
        lambda: PokerDVSDataModule(on_bad_sample="ignore"),
        lambda: NMNISTDataModule(on_bad_sample="ignore"),
        lambda: DVSGestureDataModule(on_bad_sample="ignore"),
        lambda: ASLDVSDataModule(on_bad_sample="ignore"),
        lambda: DHP19DataModule(on_bad_sample="ignore"),
    ],
)
def test_a_bad_option_value_names_the_key_the_choices_and_the_value(make):
    expected = r"data\.on_bad_sample must be one of \('raise', 'skip'\), found 'ignore'"
    with pytest.raises(ValueError, match=expected):
        make()


def test_policy_check_and_default_is_raise():
    assert check_bad_sample_policy("skip") == "skip"
    assert NMNISTFramesDataModule().on_bad_sample == "raise"
    assert DHP19DataModule().on_bad_sample == "raise"
    with pytest.raises(ValueError, match="found None"):
        check_bad_sample_policy(None)


class _Reads:
    """A dataset whose items 1 and 3 are broken files and item 4 is a programming error."""

    def __len__(self) -> int:
        return 5

    def __getitem__(self, index: int) -> int:
        if index == 1:
            raise EventFormatError("/data/one.bin: truncated")
        if index == 3:
            raise OSError("/data/three.bin: Input/output error")
        if index == 4:
            raise TypeError("a bug, not a bad file")
        return index * 10


def test_guard_skips_bad_files_only_and_the_ledger_collects_them(tmp_path):
    ledger = BadSampleLedger(tmp_path / "ledger")
    guard = BadSampleGuard(_Reads(), ledger, "train", origin=lambda i: f"file{i}")
    assert [guard[i] for i in (0, 2)] == [0, 20]
    marker = guard[1]
    assert isinstance(marker, SkippedSample) and marker.file == "file1" and "truncated" in marker.reason
    assert isinstance(guard[3], SkippedSample)
    with pytest.raises(TypeError, match="a bug"):
        guard[4]
    mark = ledger.marks()
    assert [(r.stage, r.file, r.index) for r in ledger.records()] == [
        ("train", "file1", 1),
        ("train", "file3", 3),
    ]
    guard[1]
    assert [r.index for r in ledger.records(since=mark)] == [1]
    assert ledger.records(stage="val") == []
    collate = DropBadSamples(lambda items: torch.tensor(items))
    assert collate([guard[0], guard[1], guard[2]]).tolist() == [0, 20]
    with pytest.raises(AllSamplesBadError, match=r"all 2 sample\(s\).*\['file1', 'file3'\]"):
        collate([guard[1], guard[3]])


def test_setup_records_count_each_file_once_and_the_ledger_folder_goes_away():
    ledger = BadSampleLedger()
    assert ledger.record_setup("/d/a.npz", "broken") and not ledger.record_setup("/d/a.npz", "broken")
    assert [r.file for r in ledger.setup_records()] == ["/d/a.npz"]
    folder = ledger.directory
    assert folder.is_dir()
    del ledger
    assert not folder.exists()


# ---------------------------------------------------------------- N-MNIST frames (classification)


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad_digits")
    generate_synthetic_nmnist(root, DIGITS)
    return root


def _broken_digits(digits: Path, tmp_path: Path) -> tuple[Path, list[Path], list[Path]]:
    """A copy with 2 broken training and 1 broken test files; returns (root, bad train, bad test)."""
    root = tmp_path / "digits"
    shutil.copytree(digits, root)
    train = [p for p, _ in read_synthetic_nmnist_split(root, True)]
    test = [p for p, _ in read_synthetic_nmnist_split(root, False)]
    return root, [truncate(train[2]), garble(train[7])], [truncate(test[1], drop=3)]


def _frames_module(root: Path, **kwargs) -> NMNISTFramesDataModule:
    # every training file in the training loader (no validation hold-out): the broken ones are trained on
    settings = {"n_train": DIGITS.n_train, "n_test": DIGITS.n_test, "seed": DIGITS.seed, "batch_size": 4}
    settings["val_fraction"] = 0.0
    return NMNISTFramesDataModule(root=str(root), **{**settings, **kwargs})


def test_frames_raise_names_the_broken_file(digits, tmp_path):
    root, bad_train, _ = _broken_digits(digits, tmp_path)
    data = _frames_module(root)
    data.setup("fit")
    with pytest.raises(EventFormatError, match=rf"{bad_train[0].parent.name}/{bad_train[0].name}"):
        list(data.train_dataloader())


@pytest.mark.parametrize("workers", [0, 2])
def test_frames_skip_keeps_the_good_samples_in_the_sampler_order(digits, tmp_path, workers):
    root, bad_train, _ = _broken_digits(digits, tmp_path)
    data = _frames_module(root, on_bad_sample="skip", num_workers=workers)
    data.setup("fit")
    files = read_synthetic_nmnist_split(root, True)
    loader = data.train_dataloader()
    loader.sampler.set_epoch(3)
    batches = list(loader)
    sampler = EpochSeededRandomSampler(data.split(True))
    sampler.set_epoch(3)
    broken = {str(p) for p in bad_train}
    expected = [files[i][1] for i in sampler if str(files[i][0]) not in broken]
    assert sum(len(b[2]) for b in batches) == len(files) - 2
    assert labels_of(batches, 2) == expected  # the order of an intact run, minus the broken files
    records = data.bad_samples.records(stage="train")
    assert len(records) == 2 and {r.file for r in records} == broken
    assert all("EventFormatError" in r.reason for r in records)
    frames, lengths, labels = batches[0]
    assert frames.dtype == torch.uint8 and frames.shape[1:] == (len(labels), 2, 34, 34)  # counts fit 8 bits


def test_frames_skip_warns_per_file_and_a_batch_of_only_bad_files_is_an_error(digits, tmp_path, caplog):
    root, _, bad_test = _broken_digits(digits, tmp_path)
    data = _frames_module(root, on_bad_sample="skip", batch_size=1)
    data.setup("fit")
    loader = iter(data.val_dataloader())
    with caplog.at_level(logging.WARNING, logger="event_lightning.data.loading.bad_samples"):
        assert len(next(loader)[2]) == 1
        with pytest.raises(AllSamplesBadError, match=rf"all 1 sample\(s\).*{bad_test[0].name}"):
            next(loader)  # test sample 1 is the broken one: its batch of one has nothing left
    assert [m for m in caplog.messages if str(bad_test[0]) in m and "EventFormatError" in m]


class _Probe(pl.LightningModule):
    """A linear read-out of the summed frames: enough to run fit/validate on real batches."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(2 * 34 * 34, 10)

    def _loss(self, batch) -> torch.Tensor:
        frames, _, labels = batch
        return F.cross_entropy(self.linear(frames.float().sum(0).flatten(1)), labels)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train/loss", loss, batch_size=len(batch[2]))
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self._loss(batch), batch_size=len(batch[2]))

    def test_step(self, batch, batch_idx):
        self.log("test/loss", self._loss(batch), batch_size=len(batch[2]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _trainer(tmp_path: Path, **kwargs) -> pl.Trainer:
    return pl.Trainer(
        default_root_dir=tmp_path,
        callbacks=[BadSampleReporter()],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
        **kwargs,
    )


@pytest.mark.parametrize("workers", [0, 2])
def test_epoch_end_totals_are_logged_and_warned(digits, tmp_path, workers):
    root, bad_train, bad_test = _broken_digits(digits, tmp_path)
    data = _frames_module(root, on_bad_sample="skip", num_workers=workers)  # workers > 0: persistent
    trainer = _trainer(tmp_path, max_epochs=2)
    with pytest.warns(BadSampleWarning, match=r"train epoch 1: skipped 2 sample\(s\) from 2 bad file\(s\)"):
        trainer.fit(_Probe(), datamodule=data)
    assert trainer.callback_metrics["data/skipped_samples_train"].item() == 2  # per epoch, not cumulative
    assert trainer.callback_metrics["data/skipped_samples_val"].item() == 1
    assert trainer.callback_metrics["data/skipped_files_setup"].item() == 0
    assert len(data.bad_samples.records(stage="train")) == 4  # 2 files x 2 epochs
    with pytest.warns(BadSampleWarning, match=rf"test run: skipped 1 sample.*{bad_test[0].name}"):
        trainer.test(_Probe(), datamodule=data)
    assert trainer.callback_metrics["data/skipped_samples_test"].item() == 1


def test_reporter_is_silent_without_a_ledger(tmp_path):
    samples = [(torch.ones(3, 2, 34, 34), 1)] * 4
    loader = torch.utils.data.DataLoader(samples, batch_size=2, collate_fn=_collate_frames)
    trainer = _trainer(tmp_path, max_epochs=1)
    trainer.fit(_Probe(), loader, loader)
    assert "data/skipped_samples_train" not in trainer.callback_metrics


def _collate_frames(batch):
    from event_lightning.data.loading.frames_collate import pad_time_collate

    return pad_time_collate(batch)


def test_option_and_reporter_through_the_command_line(digits, tmp_path):
    """``--data.init_args.on_bad_sample skip`` reaches the DataModule, and the reporter registered as
    an always-present parser group (as the lead adds it to EventLightningCLI) logs the totals."""
    from event_lightning.cli import EventLightningCLI

    class ReportingCLI(EventLightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            super().add_arguments_to_parser(parser)
            if "bad_samples" not in parser.groups:  # not yet registered by the CLI itself
                parser.add_lightning_class_args(BadSampleReporter, "bad_samples")

    root, _, bad_test = _broken_digits(digits, tmp_path)
    arguments = [
        "validate",
        "--config",
        str(Path(__file__).resolve().parents[2] / "config" / "quickstart.yaml"),
        "--data.root",
        str(root),
        "--data.n_train",
        str(DIGITS.n_train),
        "--data.n_test",
        str(DIGITS.n_test),
        "--data.seed",
        str(DIGITS.seed),
        "--data.batch_size",
        "3",
        "--data.val_fraction",
        "0",  # validate on the test split, where the broken files are
        "--trainer.logger.init_args.save_dir",
        str(tmp_path / "runs"),
        "--trainer.enable_progress_bar",
        "false",
    ]
    with pytest.raises(EventFormatError, match=bad_test[0].name):
        ReportingCLI(args=arguments)
    with pytest.warns(BadSampleWarning, match=rf"val run: skipped 1 sample.*{bad_test[0].name}"):
        cli = ReportingCLI(args=[*arguments, "--data.init_args.on_bad_sample", "skip"])
    assert cli.datamodule.on_bad_sample == "skip"
    assert any(isinstance(c, BadSampleReporter) for c in cli.trainer.callbacks)
    assert cli.trainer.callback_metrics["data/skipped_samples_val"].item() == 1
    with pytest.raises(SystemExit):  # jsonargparse rejects a value outside the Literal
        ReportingCLI(args=[*arguments, "--data.init_args.on_bad_sample", "ignore"])


# ---------------------------------------------------------------- POKER-DVS (tonic, read at setup)


@pytest.fixture(scope="module")
def poker(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad_poker")
    generate_synthetic_pokerdvs(root, config=POKER)
    return root


def _broken_poker(poker: Path, tmp_path: Path) -> tuple[Path, list[Path]]:
    root = tmp_path / "poker"
    shutil.copytree(poker, root)
    files = sorted((root / "POKERDVS" / "pips_train").glob("*/*.npy"))
    return root, [truncate(files[3], drop=40), garble(files[11])]


def test_poker_raise_names_the_file_tonic_could_not_load(poker, tmp_path):
    root, bad = _broken_poker(poker, tmp_path)
    with pytest.raises(EventFormatError) as error:
        PokerDVSDataModule(root=str(root)).setup("fit")
    assert any(str(path) in str(error.value) for path in bad)


def test_poker_skip_leaves_the_files_out_at_setup_once(poker, tmp_path):
    root, bad = _broken_poker(poker, tmp_path)
    clean = PokerDVSDataModule(root=str(poker))
    data = PokerDVSDataModule(root=str(root), on_bad_sample="skip", batch_size=5, num_workers=2)
    with pytest.warns(BadSampleWarning, match=r"POKERDVS train: left out 2 bad file"):
        data.setup("fit")
    train, reference = data.split(True), clean.split(True)
    assert len(train) == len(reference) - 2 == 4 * POKER.train_per_class - 2
    good = [
        i
        for i, f in enumerate(clean.sample_files(True))
        if Path(f).relative_to(poker).as_posix() not in {p.relative_to(root).as_posix() for p in bad}
    ]
    for mine, theirs in zip(range(len(train)), good, strict=True):  # same frames and labels as tonic
        frames, label = train[mine]
        ref_frames, ref_label = reference[theirs]
        assert label == ref_label and torch.equal(frames, ref_frames)
    assert {r.file for r in data.bad_samples.setup_records()} == {str(p) for p in bad}
    data.setup("fit")  # again: nothing counted twice
    assert len(data.bad_samples.setup_records()) == 2
    assert sum(len(b[2]) for b in data.train_dataloader()) == len(train)
    assert len(data.split(False)) == 4 * POKER.test_per_class  # the test archive is intact


# ---------------------------------------------------------------- N-MNIST for the HG-VAE (per sample)


def _hgvae_module(root: Path, **kwargs) -> NMNISTDataModule:
    config = {"n_train": DIGITS.n_train, "n_test": DIGITS.n_test, "seed": DIGITS.seed}
    settings = {"synthetic": True, "synthetic_config": config, "batch_size": 3, "n_time_steps": 20}
    return NMNISTDataModule(root=str(root), **{**settings, **kwargs})


def _broken_hgvae(digits: Path, tmp_path: Path) -> tuple[Path, list[Path]]:
    root = tmp_path / "hgvae"
    shutil.copytree(digits, root / "NMNIST")
    train = [p for p, _ in read_synthetic_nmnist_split(root / "NMNIST", True)]
    return root, [truncate(train[0]), garble(train[5])]


def test_hgvae_raise_names_the_file(digits, tmp_path):
    root, bad = _broken_hgvae(digits, tmp_path)
    data = _hgvae_module(root)
    data.setup("fit")
    with pytest.raises(EventFormatError, match=bad[0].name):
        list(data.train_dataloader())


@pytest.mark.parametrize(("workers", "cache"), [(0, False), (2, True)])
def test_hgvae_skip_drops_the_broken_samples(digits, tmp_path, workers, cache):
    root, bad = _broken_hgvae(digits, tmp_path)
    data = _hgvae_module(root, on_bad_sample="skip", num_workers=workers, cache=cache)
    data.setup("fit")
    batches = list(data.train_dataloader())
    files = read_synthetic_nmnist_split(root / "NMNIST", True)
    good_labels = sorted(label for path, label in files if path not in bad)
    # 12 files in batches of 3: drop_last drops none
    assert sorted(labels_of(batches, "label")) == good_labels
    assert batches[0]["frames"].shape[0] == 20 and batches[0]["frames"].dtype == torch.uint8  # counts over the bus
    records = data.bad_samples.records(stage="train")
    assert sorted(r.file for r in records) == sorted(str(p) for p in bad)
    assert len(list(data.val_dataloader())) == 2 and not data.bad_samples.records(stage="val")


# ---------------------------------------------------------------- DVSGesture (per sample, cached frames)


def test_dvsgesture_skip_and_raise(tmp_path):
    root = tmp_path / "gestures"
    settings = {"synthetic": True, "synthetic_config": GESTURES, "n_time_steps": 10, "batch_size": 2}
    written = DVSGestureDataModule(root=str(root), **settings)
    written.prepare_data()
    test_files = [r.path for r in list_dvsgesture_split(written.data_root, False) if r.label != 10]
    bad = [truncate(test_files[1], drop=20), garble(test_files[4])]
    raising = DVSGestureDataModule(root=str(root), **settings)
    raising.setup("validate")
    with pytest.raises(EventFormatError, match=bad[0].parent.name):
        list(raising.val_dataloader())
    data = DVSGestureDataModule(root=str(root), on_bad_sample="skip", num_workers=2, **settings)
    data.setup("validate")
    batches = list(data.val_dataloader())
    assert sum(len(b["label"]) for b in batches) == len(test_files) - 2
    assert sorted(r.file for r in data.bad_samples.records(stage="val")) == sorted(str(p) for p in bad)
    assert set(batches[0]) == {"frames", "target", "label", "light", "user"}


# ---------------------------------------------------------------- ASL-DVS (packed at setup, or per sample)


@pytest.fixture(scope="module")
def asl(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad_asl")
    write_synthetic_asl_dvs(root, ASL)
    return root


def _broken_asl(asl: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """Copy with a broken training file (a_0001) and a broken validation file (b_0009)."""
    root = tmp_path / "asl"
    shutil.copytree(asl, root, ignore=shutil.ignore_patterns("packed"))
    return (
        root,
        truncate(root / "events_np" / "a" / "a_0001.npz", drop=60),
        garble(root / "events_np" / "b" / "b_0009.npz"),
    )


def _asl_module(root: Path, **kwargs) -> ASLDVSDataModule:
    settings = {
        "batch_size": 4,
        "num_workers": 0,
        "seed": 0,
        "synthetic": ASL,
        "val_repeats": 2,
        "pin_memory": False,
    }
    return ASLDVSDataModule(root=str(root), **{**settings, **kwargs})


def test_asl_packed_skip_at_pack_time_and_a_later_raise_run_still_fails(asl, tmp_path):
    root, bad_train, bad_val = _broken_asl(asl, tmp_path)
    with pytest.raises(EventFormatError, match="a_0001.npz"):
        _asl_module(root).setup("fit")
    data = _asl_module(root, on_bad_sample="skip")
    with pytest.warns(BadSampleWarning, match=r"ASL-DVS: left out 2 bad file"):
        data.setup("fit")
    per_class = ASL.samples_per_class
    assert len(data.train_set) == 3 * int(0.8 * per_class) - 1
    assert len(data.val_set) == 2 * (3 * (per_class - int(0.8 * per_class)) - 1)
    assert bad_train not in data.train_files and bad_val not in data.val_files
    assert root / "events_np" / "a" / "a_0000.npz" in data.train_files  # the split of the good files is kept
    assert {r.file for r in data.bad_samples.setup_records()} == {str(bad_train), str(bad_val)}
    batch = next(iter(data.train_dataloader()))
    assert batch.x.shape[0] == 4 and batch.valid_mask.any(1).all()
    with pytest.raises(EventFormatError, match=r"a_0001\.npz.*on_bad_sample: skip"):
        _asl_module(root).setup("fit")  # the cache left them out: raise mode still refuses it


@pytest.mark.parametrize("workers", [0, 2])
def test_asl_unpacked_skip_per_sample_and_at_the_t_max_scan(asl, tmp_path, workers):
    root, bad_train, bad_val = _broken_asl(asl, tmp_path)
    settings = {"packed": False, "on_bad_sample": "skip", "num_workers": workers, "persistent_workers": False}
    data = _asl_module(root, **settings)
    with pytest.warns(BadSampleWarning, match="a_0001.npz"):
        data.setup("fit")  # t_max scans the training files: the broken one is left out there
    assert bad_train not in data.train_files and bad_val in data.val_files
    batches = list(data.val_dataloader())
    n_val = 3 * (ASL.samples_per_class - int(0.8 * ASL.samples_per_class))
    assert sum(len(b.label) for b in batches) == 2 * (n_val - 1)  # read twice (val_repeats), skipped twice
    records = data.bad_samples.records(stage="val")
    assert len(records) == 2 and {r.file for r in records} == {str(bad_val)}
    assert [r.file for r in data.bad_samples.setup_records()] == [str(bad_train)]
    fixed = _asl_module(root, packed=False, t_max=1e5)
    fixed.setup("fit")
    with pytest.raises(EventFormatError, match="b_0009.npz"):
        list(fixed.val_dataloader())


# ---------------------------------------------------------------- DHP19 (recordings opened at setup)


def test_dhp19_unreadable_recording_is_skipped_or_raises(tmp_path):
    root = tmp_path / "dhp19"
    write_synthetic_dhp19(root, DHP19)
    bad = root / "S16_session1_mov1_events.h5"
    shutil.copy(root / "S13_session1_mov1_events.h5", bad)
    shutil.copy(root / "S13_session1_mov1_label.h5", root / "S16_session1_mov1_label.h5")
    truncate(bad, drop=bad.stat().st_size // 2)
    settings = {"camera_views": [3], "cnn_event_count": 500, "train_subjects": [1], "test_subjects": [13, 16]}
    with pytest.raises(EventFormatError, match="S16_session1_mov1_events.h5"):
        DHP19DataModule(root=str(root), **settings).split("test")
    data = DHP19DataModule(root=str(root), on_bad_sample="skip", **settings)
    expected = r"DHP19 dhp19-test: left out 1 bad file.*S16_session1_mov1_events\.h5"
    with pytest.warns(BadSampleWarning, match=expected):
        test = data.split("test")
    assert [s.recording.stem for s in test.sources] == ["S13_session1_mov1"]
    data.split("val")  # the same subjects again: the file is counted once
    assert [r.file for r in data.bad_samples.setup_records()] == [str(bad)]
    batch = data.on_after_batch_transfer(next(iter(data.test_dataloader())), 0)
    assert batch["cnn_input"].shape[1:] == (20, 256, 256) and batch["camera"].tolist()[0] == 3
    assert len(batch["camera"]) == min(len(test), 8)


def test_dhp19_windows_of_a_recording_broken_after_setup_are_dropped_from_batches(tmp_path):
    root = tmp_path / "dhp19"
    write_synthetic_dhp19(root, DHP19)
    bad = root / "S16_session1_mov1_events.h5"
    shutil.copy(root / "S13_session1_mov1_events.h5", bad)
    shutil.copy(root / "S13_session1_mov1_label.h5", root / "S16_session1_mov1_label.h5")
    settings = {"camera_views": [3], "cnn_event_count": 500, "train_subjects": [1], "test_subjects": [13, 16]}
    settings |= {"on_bad_sample": "skip", "num_workers": 2, "eval_batch_size": 64}
    data = DHP19DataModule(root=str(root), **settings)
    data.setup("test")
    test = data.split("test")
    per_recording = [sum(1 for i, _, _ in test.index if i == k) for k in range(2)]
    assert [s.recording.stem for s in test.sources] == ["S13_session1_mov1", "S16_session1_mov1"]
    assert len(test) <= 64 and per_recording[1] > 0
    truncate(bad, drop=bad.stat().st_size // 2)  # e.g. a network drive dropping the file mid-run
    batches = [data.on_after_batch_transfer(b, 0) for b in data.test_dataloader()]
    assert sum(len(b["camera"]) for b in batches) == per_recording[0]
    assert sum(len(b["cnn_input"]) for b in batches) == per_recording[0]
    records = data.bad_samples.records(stage="test")
    assert len(records) == per_recording[1] and {r.file for r in records} == {str(bad)}
    assert all("cannot open as HDF5" in r.reason for r in records)
    # A recording's windows are contiguous in evaluation order: batches of one bad recording only
    # have nothing left, which is the documented error naming the file.
    data.eval_batch_size = 1
    with pytest.raises(AllSamplesBadError, match=bad.name):
        list(data.test_dataloader())
