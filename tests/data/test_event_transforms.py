"""``data.train_transform`` / ``data.eval_transform``: tonic's and this package's transforms listed in a
config, applied per sample with a generator of (seed, epoch, sample), refused when they leave the sensor."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import tonic.transforms as tt
import torch
from lightning_fabric.utilities.data import _set_sampler_epoch
from pytorch_lightning.trainer.states import RunningStage

from event_lightning.cli import main
from event_lightning.data.datasets.asl_dvs import ASLDVSDataModule
from event_lightning.data.datasets.dhp19 import SyntheticDHP19DataModule
from event_lightning.data.datasets.dvsgesture import DVSGestureDataModule
from event_lightning.data.datasets.nmnist import NMNISTDataModule, NMNISTFramesDataModule
from event_lightning.data.datasets.pokerdvs import PokerDVSDataModule
from event_lightning.data.loading.classification_datamodule import EpochSeededRandomSampler
from event_lightning.data.loading.sample_transforms import EpochCountingDistributedSampler
from event_lightning.data.standins.asl_dvs import SyntheticASLConfig
from event_lightning.events import EventFormatError, augment

AUGMENTED = "config/quickstart_augmented.yaml"


def _datamodule(root, **kwargs) -> NMNISTFramesDataModule:
    return NMNISTFramesDataModule(root=str(root), n_train=20, n_test=10, batch_size=5, num_workers=0, **kwargs)


def _train_sample(dm: NMNISTFramesDataModule, epoch: int, position: int = 0) -> torch.Tensor:
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)  # what Lightning does at every epoch start, also after a resume
    index = loader.sampler.data_source.indices[position]
    return loader.dataset.dataset[index][0]


@pytest.mark.slow
def test_config_trains_with_tonic_denoise_and_our_spatial_jitter(tmp_path, quick, tiny_digits) -> None:
    args = [
        "--config",
        str(quick.repo / AUGMENTED),
        *("--data.root", str(tiny_digits), "--data.n_train", "40", "--data.n_test", "20", "--data.batch_size", "10"),
        *("--trainer.logger.init_args.save_dir", str(tmp_path / "runs")),
        *("--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"),
    ]
    cli = main(["fit", *args, "--trainer.max_epochs", "1"])
    assert cli.trainer.current_epoch == 1 and cli.trainer.global_step == quick.steps_per_epoch
    # the checkpoint loads (transforms stay out of its hyperparameters) and the run resumes
    resumed = main(["fit", *args, "--trainer.max_epochs", "2", "--resume", "last"])
    assert resumed.trainer.current_epoch == 2 and resumed.trainer.global_step == 2 * quick.steps_per_epoch
    train = cli.datamodule.transforms.train.pipeline.transforms
    assert [type(t) for t in train] == [tt.Denoise, augment.SpatialJitter]
    assert train[0].filter_time == 10000
    assert [type(t) for t in cli.datamodule.transforms.evaluation.pipeline.transforms] == [tt.Denoise]


def test_training_samples_depend_on_seed_epoch_and_sample_only(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PL_GLOBAL_SEED", "42")
    jitter = [augment.SpatialJitter(var_x=2, var_y=2)]
    dm = _datamodule(tmp_path, train_transform=jitter, val_fraction=0.2)
    dm.setup("fit")
    epoch_1 = _train_sample(dm, 1)
    assert not torch.equal(epoch_1, _train_sample(dm, 2))
    assert torch.equal(epoch_1, _train_sample(dm, 1))
    resumed = _datamodule(tmp_path, train_transform=jitter, val_fraction=0.2)  # a fresh process at epoch 1
    resumed.setup("fit")
    assert torch.equal(epoch_1, _train_sample(resumed, 1))
    plain = _datamodule(tmp_path, val_fraction=0.2)
    plain.setup("fit")
    assert not torch.equal(epoch_1, _train_sample(plain, 1))
    monkeypatch.setenv("PL_GLOBAL_SEED", "43")
    assert not torch.equal(epoch_1, _train_sample(dm, 1))


def test_eval_transform_serves_validation_test_and_predict_the_same_every_epoch(tmp_path) -> None:
    denoise = [augment.Denoise(filter_time=2_000)]
    dm = _datamodule(tmp_path, eval_transform=denoise, val_fraction=0.2, cache=True)
    plain = _datamodule(tmp_path, val_fraction=0.2, cache=True)
    for module in (dm, plain):
        module.setup("fit")
    for stage in ("val_dataloader", "test_dataloader", "predict_dataloader"):
        ours, theirs = next(iter(getattr(dm, stage)())), next(iter(getattr(plain, stage)()))
        assert ours[0].sum() < theirs[0].sum()  # fewer events counted: denoised
        assert torch.equal(ours[0], next(iter(getattr(dm, stage)()))[0])
    # training has no transform: it still reads the frame cache, validation frames every epoch
    assert dm.train_dataloader().dataset.dataset.cache is not None
    assert dm.val_dataloader().dataset.dataset.cache is None


def test_transforms_that_leave_the_sensor_are_refused_with_the_sample_and_setting(tmp_path) -> None:
    def shift_right(events: np.ndarray) -> np.ndarray:
        out = events.copy()
        out["x"] += 40
        return out

    dm = _datamodule(tmp_path, train_transform=[shift_right])
    dm.setup("fit")
    with pytest.raises(EventFormatError, match=r"\.bin after data\.train_transform: .* x outside \[0, 34\)"):
        next(iter(dm.train_dataloader()))
    cropped = _datamodule(tmp_path, eval_transform=[augment.CenterCrop(size=20)])
    cropped.setup("test")
    with pytest.raises(ValueError, match=r"data\.eval_transform changes the sensor .* to SensorSize\(width=20"):
        next(iter(cropped.test_dataloader()))


def test_pokerdvs_takes_tonic_transforms_on_its_tonic_samples(tmp_path) -> None:
    config = {"train_per_class": 2, "test_per_class": 1}
    kwargs = {"root": str(tmp_path), "synthetic": True, "synthetic_config": config, "batch_size": 4, "num_workers": 0}
    dm = PokerDVSDataModule(train_transform=[tt.RandomFlipPolarity(p=1.0)], **kwargs)
    plain = PokerDVSDataModule(**kwargs)
    for module in (dm, plain):
        module.setup("fit")
    flipped = dm.transforms.staged(dm.split(True), "train")[0][0]
    assert torch.equal(flipped.flip(1), plain.split(True)[0][0])  # polarity channels swapped


def _hgvae_datamodule(kind: str, root, **kwargs):
    if kind == "nmnist":
        config = {"n_train": 6, "n_test": 4}
        return NMNISTDataModule(root=str(root), synthetic=True, synthetic_config=config, n_time_steps=40, **kwargs)
    config = {"n_classes": 2, "train_users": [1], "test_users": [24], "lightings": ["led"], "duration_us": 200_000}
    return DVSGestureDataModule(
        root=str(root), synthetic=True, synthetic_config=config, dt_us=2_000, n_time_steps=20,
        train_random_window=False, test_random_window=False, **kwargs,
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["nmnist", "dvsgesture"])
def test_hgvae_datamodules_run_the_stage_transforms_on_the_window_events(kind: str, tmp_path) -> None:
    flip = [tt.RandomFlipPolarity(p=1.0)]  # tonic's, certain: ON and OFF channels swap
    plain = _hgvae_datamodule(kind, tmp_path, batch_size=2, num_workers=0)
    flipped = _hgvae_datamodule(kind, tmp_path, batch_size=2, num_workers=0, train_transform=flip, eval_transform=flip)
    for module in (plain, flipped):
        module.prepare_data()
        module.setup("fit")
    train, reference = flipped.transforms.staged(flipped.split(True), "train"), plain.split(True)
    assert torch.equal(torch.as_tensor(train[0]["frames"]).flip(1), torch.as_tensor(reference[0]["frames"]))
    ours, theirs = next(iter(flipped.test_dataloader())), next(iter(plain.test_dataloader()))
    assert torch.equal(ours["frames"].flip(2), theirs["frames"])
    assert flipped.hparams.get("train_transform") is None  # objects stay out of the checkpoint's hyperparameters


@pytest.mark.parametrize("packed", [True, False])
def test_asl_dvs_runs_the_stage_transforms_on_the_sampled_events(packed: bool, tmp_path) -> None:
    config = SyntheticASLConfig(num_classes=2, samples_per_class=5, events_per_sample=400, short_fraction=0.0)
    kwargs = {"synthetic": config, "packed": packed, "batch_size": 4, "num_workers": 0, "seed": 0}

    def first_batches(**transforms):
        dm = ASLDVSDataModule(root=str(tmp_path), **kwargs, **transforms)
        dm.setup("fit")
        torch.manual_seed(0)  # the training order
        return next(iter(dm.train_dataloader())), next(iter(dm.val_dataloader()))

    plain_train, plain_val = first_batches()
    flip = [tt.RandomFlipPolarity(p=1.0)]
    train, val = first_batches(train_transform=flip, eval_transform=flip)
    for ours, theirs in ((train, plain_train), (val, plain_val)):
        valid = theirs.valid_mask
        assert torch.equal(ours.valid_mask, valid) and torch.equal(ours.x, theirs.x) and torch.equal(ours.t, theirs.t)
        assert torch.equal(ours.p[valid], 1 - theirs.p[valid])


def test_dhp19_runs_the_stage_transforms_on_each_window_events(tmp_path) -> None:
    kwargs = {"root": str(tmp_path), "subjects": [1, 13], "duration_ms": 400, "camera_views": [3], "downsample": 8}
    kwargs |= {"cnn_event_count": 500, "train_subjects": [1], "test_subjects": [13], "batch_size": 2, "num_workers": 0}
    dm = SyntheticDHP19DataModule(train_transform=[augment.DropEvent(p=1.0)], **kwargs)
    dm.setup("fit")
    train = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    val = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    assert train["cnn_input"].abs().sum() == 0 < val["cnn_input"].abs().sum()  # every event dropped in training
    assert "train_transform" not in dm.hparams and "eval_transform" not in dm.hparams


def test_worker_processes_transform_as_the_main_process_every_epoch(tmp_path, monkeypatch) -> None:
    """The epoch reaches persistent DataLoader workers (shared memory): their samples equal the
    main process's, epoch after epoch."""
    monkeypatch.setenv("PL_GLOBAL_SEED", "42")

    def batches(workers: int) -> list[list[torch.Tensor]]:
        dm = NMNISTFramesDataModule(
            root=str(tmp_path), n_train=12, n_test=4, batch_size=4, num_workers=workers, val_fraction=0.0,
            train_transform=[augment.SpatialJitter(var_x=2, var_y=2)],
        )  # fmt: skip
        dm.setup("fit")
        loader = dm.train_dataloader()
        epochs = []
        for epoch in (0, 1):
            loader.sampler.set_epoch(epoch)
            epochs.append([frames for frames, _, _ in loader])
        return epochs

    in_process, in_workers = batches(0), batches(2)
    for main_epoch, worker_epoch in zip(in_process, in_workers, strict=True):
        assert all(torch.equal(a, b) for a, b in zip(main_epoch, worker_epoch, strict=True))


def _ddp_train_loader(dm: NMNISTFramesDataModule, rank: int, **trainer_options):
    """Rank ``rank``'s training loader as Lightning prepares it for a 2-process DDP fit (not launched)."""
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False, **trainer_options)
    trainer.strategy.cluster_environment.set_global_rank(rank)
    dm.trainer = trainer
    loader = dm.train_dataloader()
    prepared = trainer._data_connector._prepare_dataloader(loader, shuffle=True, mode=RunningStage.TRAINING)
    return loader, prepared


def test_ddp_training_transforms_get_the_epoch_on_disjoint_shards(tmp_path, monkeypatch) -> None:
    """Under DDP the training sampler is a DistributedSampler that Lightning keeps and whose
    ``set_epoch`` reaches the transforms' epoch counter, so the draws change every epoch."""
    monkeypatch.setenv("PL_GLOBAL_SEED", "42")
    jitter = [augment.SpatialJitter(var_x=2, var_y=2)]
    shards = []
    for rank in (0, 1):
        dm = _datamodule(tmp_path, train_transform=jitter, val_fraction=0.0)
        dm.setup("fit")
        loader, prepared = _ddp_train_loader(dm, rank)
        assert prepared is loader  # Lightning leaves it as it is
        assert isinstance(loader.sampler, EpochCountingDistributedSampler)
        samples = []
        for epoch in (3, 4):
            _set_sampler_epoch(loader, epoch)  # what Lightning's fit loop does at every epoch start, on every rank
            assert dm.transforms.epoch.get() == epoch
            samples.append(loader.dataset[0][0])
        assert not torch.equal(*samples)  # a new draw every epoch
        shards.append(list(loader.sampler))
    assert sorted(shards[0] + shards[1]) == list(range(20))  # disjoint rank shards of every training recording
    dm = _datamodule(tmp_path, train_transform=jitter, val_fraction=0.0)
    dm.setup("fit")
    loader, _ = _ddp_train_loader(dm, 0, use_distributed_sampler=False)  # the user shards: our sampler stays
    assert type(loader.sampler) is EpochSeededRandomSampler
