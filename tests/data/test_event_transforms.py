"""``data.train_transform`` / ``data.eval_transform``: tonic's and this package's transforms listed in a
config, applied per sample with a generator of (seed, epoch, sample), refused when they leave the sensor."""

from __future__ import annotations

import numpy as np
import pytest
import tonic.transforms as tt
import torch

from event_lightning.cli import main
from event_lightning.data.datasets.nmnist import NMNISTFramesDataModule
from event_lightning.data.datasets.pokerdvs import PokerDVSDataModule
from event_lightning.events import EventFormatError, augment

AUGMENTED = "config/quickstart_augmented.yaml"


def _datamodule(root, **kwargs) -> NMNISTFramesDataModule:
    return NMNISTFramesDataModule(root=str(root), n_train=20, n_test=10, batch_size=5, num_workers=0, **kwargs)


def _train_sample(dm: NMNISTFramesDataModule, epoch: int, position: int = 0) -> torch.Tensor:
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)  # what Lightning does at every epoch start, also after a resume
    index = loader.sampler.data_source.indices[position]
    return loader.dataset.dataset[index][0]


def test_config_trains_with_tonic_denoise_and_our_spatial_jitter(tmp_path, quick, tiny_digits) -> None:
    cli = main(
        [
            "fit",
            "--config",
            str(quick.repo / AUGMENTED),
            "--data.root",
            str(tiny_digits),
            "--data.n_train",
            "40",
            "--data.n_test",
            "20",
            "--data.batch_size",
            "10",
            "--trainer.max_epochs",
            "1",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path / "runs"),
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.enable_model_summary",
            "false",
        ]
    )
    assert cli.trainer.current_epoch == 1 and cli.trainer.global_step == quick.steps_per_epoch
    train = cli.datamodule._transforms[True].pipeline.transforms
    assert [type(t) for t in train] == [tt.Denoise, augment.SpatialJitter]
    assert train[0].filter_time == 10000
    assert [type(t) for t in cli.datamodule._transforms[False].pipeline.transforms] == [tt.Denoise]


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
    flipped = dm._with_transform(dm.split(True), "train")[0][0]
    assert torch.equal(flipped.flip(1), plain.split(True)[0][0])  # polarity channels swapped
