"""Loader settings shared by every DataModule: workers from the CPU count per training process,
pinned memory when the trainer runs on CUDA, persistent workers, and the settings checked early."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest
import torch

from event_lightning.data.datasets.asl_dvs import ASLDVSDataModule
from event_lightning.data.datasets.dhp19 import DHP19DataModule
from event_lightning.data.datasets.dsprites import DSpritesSequenceDataModule
from event_lightning.data.datasets.dvsgesture import DVSGestureDataModule
from event_lightning.data.datasets.mnist import MNISTSequenceDataModule
from event_lightning.data.datasets.nmnist import NMNISTDataModule, NMNISTFramesDataModule
from event_lightning.data.datasets.pokerdvs import PokerDVSDataModule
from event_lightning.data.loading import loaders
from event_lightning.data.loading.loaders import MAX_AUTO_WORKERS, LoaderSettings, build_loader

DATAMODULES = [
    ASLDVSDataModule,
    DHP19DataModule,
    DSpritesSequenceDataModule,
    DVSGestureDataModule,
    MNISTSequenceDataModule,
    NMNISTDataModule,
    NMNISTFramesDataModule,
    PokerDVSDataModule,
]


def _trainer(device: str, devices: int = 1) -> SimpleNamespace:
    """What the settings read of a Trainer: the strategy's root device and the processes per node."""
    return SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device(device)), num_devices=devices)


@pytest.mark.parametrize("cls", DATAMODULES, ids=lambda c: c.__name__)
def test_every_datamodule_defaults_to_automatic_workers_and_pinning(cls):
    parameters = inspect.signature(cls.__init__).parameters
    assert parameters["num_workers"].default == "auto"
    assert parameters["pin_memory"].default == "auto"


@pytest.mark.parametrize(
    ("cpus", "devices", "expected"), [(16, 1, 8), (16, 2, 7), (64, 8, 7), (4, 4, 0), (2, 1, 1), (1, 1, 0)]
)
def test_auto_workers_share_the_cpus_among_the_gpu_processes_of_a_node(monkeypatch, cpus, devices, expected):
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.setattr(loaders, "usable_cpus", lambda: cpus)
    settings = LoaderSettings(batch_size=4)
    assert settings.workers(_trainer("cuda", devices)) == min(expected, MAX_AUTO_WORKERS)
    assert settings.pinned(_trainer("cuda", devices))
    # on the CPU the step uses the cores itself; without a trainer nothing overlaps with loading
    assert settings.workers(_trainer("cpu")) == settings.workers(None) == 0
    assert not settings.pinned(_trainer("cpu")) and not settings.pinned(None)


def _resolved(loader) -> tuple:
    return loader.num_workers, loader.pin_memory, loader.persistent_workers, loader.prefetch_factor


def test_slurm_tasks_with_their_own_cpus_are_not_divided_again(monkeypatch):
    monkeypatch.setattr(loaders, "usable_cpus", lambda: 32)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "8")
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "4")  # srun started one task per GPU
    assert LoaderSettings(batch_size=4).workers(_trainer("cuda", devices=4)) == 7
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "1")  # one task; Lightning starts the 4 processes
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "32")
    assert LoaderSettings(batch_size=4).workers(_trainer("cuda", devices=4)) == 7


def test_explicit_settings_win_and_persistent_workers_follow_the_workers():
    data = list(range(10))
    explicit = LoaderSettings(batch_size=3, num_workers=2, pin_memory=False, prefetch_factor=3)
    loader = build_loader(data, explicit, _trainer("cuda"), shuffle=True)
    assert _resolved(loader) == (2, False, True, 3) and loader.batch_size == 3
    loader = build_loader(data, LoaderSettings(batch_size=3, num_workers=0, pin_memory=True, prefetch_factor=3), None)
    assert _resolved(loader) == (0, True, False, None)


def test_a_datamodule_builds_pinned_loaders_with_workers_for_a_gpu_trainer(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.setattr(loaders, "usable_cpus", lambda: 6)
    datamodule = PokerDVSDataModule(root=str(tmp_path), synthetic=True, batch_size=4)
    datamodule.trainer = _trainer("cuda", devices=2)
    monkeypatch.setattr(datamodule, "split", lambda train: list(range(8)))
    loader = datamodule.val_dataloader()
    assert (loader.num_workers, loader.pin_memory, loader.persistent_workers) == (2, True, True)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"batch_size": 0}, "data.batch_size must be >= 1"),
        ({"batch_size": 2, "num_workers": -1}, "data.num_workers must be >= 0 or 'auto'"),
        ({"batch_size": 2, "num_workers": "many"}, "data.num_workers must be >= 0 or 'auto'"),
        ({"batch_size": 2, "pin_memory": "yes"}, "data.pin_memory must be true, false or 'auto'"),
        ({"batch_size": 2, "prefetch_factor": 0}, "data.prefetch_factor must be >= 1"),
    ],
)
def test_bad_settings_name_the_key(settings, message):
    with pytest.raises(ValueError, match=message):
        LoaderSettings(**settings)
