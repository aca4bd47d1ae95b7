"""The pieces behind resuming: the checkpoint callback's state, the resume rules, the optimiser settings."""

from __future__ import annotations

import importlib
import inspect
import math
import pkgutil
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch

import event_lightning.models
from event_lightning.callbacks.checkpoint import STATE_KEY, RunCheckpoint
from event_lightning.callbacks.resume_overrides import ResumedOptimiserSettings
from event_lightning.resume_rules import FIXED, OPTIMISER, RESUME_RULES, TRAINING, hyperparameter_changes, resume_rules


def test_the_state_saved_under_lightnings_old_key_is_adopted(tmp_path):
    # as written before the fixed key: Lightning's key made of monitor, mode and frequencies
    old_key = (
        "RunCheckpoint{'monitor': 'val/acc', 'mode': 'max', 'every_n_train_steps': 0, 'every_n_epochs': 1, "
        "'train_time_interval': None}"
    )
    state = {"monitor": "val/acc", "last_model_path": str(tmp_path / "last.ckpt"), "dirpath": str(tmp_path)}
    checkpoint = {"callbacks": {old_key: state, "RNGStateCheckpoint": {}}}
    callback = RunCheckpoint(monitor="val/acc", mode="max", every_n_train_steps=2)
    assert callback.state_key == STATE_KEY
    callback.on_load_checkpoint(None, None, checkpoint)
    assert checkpoint["callbacks"] == {STATE_KEY: state, "RNGStateCheckpoint": {}}


def test_paths_of_a_moved_run_are_reanchored_and_missing_files_dropped(tmp_path):
    old, new = tmp_path / "old" / "checkpoints", tmp_path / "new" / "checkpoints"
    new.mkdir(parents=True)
    (new / "last.ckpt").touch()
    (new / "epoch=0-step=4.ckpt").touch()
    state = {
        "monitor": "val/acc",
        "dirpath": str(old),
        "best_model_score": torch.tensor(0.5),
        "best_model_path": str(old / "epoch=0-step=4.ckpt"),
        "kth_best_model_path": str(old / "epoch=0-step=4.ckpt"),
        "kth_value": torch.tensor(0.5),
        "last_model_path": str(old / "last.ckpt"),
        "best_k_models": {str(old / "epoch=0-step=4.ckpt"): torch.tensor(0.5), str(old / "gone.ckpt"): 0.1},
    }
    callback = RunCheckpoint(monitor="val/acc", mode="max")
    callback.dirpath = str(new)
    callback.load_state_dict(state)
    assert callback.last_model_path == str(new / "last.ckpt")
    assert callback.best_model_path == str(new / "epoch=0-step=4.ckpt")
    assert list(callback.best_k_models) == [str(new / "epoch=0-step=4.ckpt")]


def _project_lightning_modules() -> list[type]:
    classes = []
    for info in pkgutil.walk_packages(event_lightning.models.__path__, "event_lightning.models."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            ours = cls.__module__ == module.__name__ and not inspect.isabstract(cls)
            if ours and issubclass(cls, pl.LightningModule):
                classes.append(cls)
    return classes


def test_every_argument_of_every_project_model_is_classified():
    classes = _project_lightning_modules()
    assert len(classes) >= 9  # LIF, Event2Vec, HG-VAE, TVAE, 5 pose models
    for cls in classes:
        assert f"{cls.__module__}.{cls.__qualname__}" in RESUME_RULES, cls
        arguments = set(inspect.signature(cls.__init__).parameters) - {"self"}
        rules = resume_rules(cls)
        assert arguments <= set(rules), (cls.__name__, sorted(arguments - set(rules)))
        assert set(rules.values()) <= {FIXED, OPTIMISER, TRAINING}


def test_changes_are_found_and_classified():
    from event_lightning.models.event2vec import Event2VecClassifier

    saved = {"_class_path": "x", "lr": 1e-3, "d_model": 256, "dropout": 0.0, "sensor_size": (48, 36, 2)}
    given = {"_class_path": "y", "lr": 1e-4, "d_model": 256, "dropout": 0.1, "sensor_size": [48, 36, 2],
             "weight_decay": 0.05, "n_layers": 2}  # fmt: skip
    changes = {c.key: c.kind for c in hyperparameter_changes(Event2VecClassifier, saved, given)}
    # weight_decay: absent from the checkpoint, so its default (0.0) there; n_layers: the default, no change
    assert changes == {"lr": OPTIMISER, "dropout": TRAINING, "weight_decay": OPTIMISER}


class _Model(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)


def _resumed(make_optimiser, make_scheduler, steps: int):
    """Optimiser and scheduler trained ``steps`` epochs, then rebuilt fresh and loaded as Lightning resumes."""
    model = _Model()
    optimiser = make_optimiser(model, 0.1)
    scheduler = make_scheduler(optimiser)
    for _ in range(steps):
        optimiser.step()
        scheduler.step()
    states = optimiser.state_dict(), scheduler.state_dict()
    fresh_optimiser = make_optimiser(model, 0.3)  # the resumed run's config: lr 0.1 -> 0.3
    fresh_scheduler = make_scheduler(fresh_optimiser)
    configs = [SimpleNamespace(scheduler=fresh_scheduler)]
    trainer = SimpleNamespace(optimizers=[fresh_optimiser], lr_scheduler_configs=configs)
    callback = ResumedOptimiserSettings()
    callback.on_fit_start(trainer, None)
    fresh_optimiser.load_state_dict(states[0])
    fresh_scheduler.load_state_dict(states[1])
    callback.on_train_start(trainer, None)
    return fresh_optimiser, fresh_scheduler


def test_a_new_rate_keeps_its_place_on_the_schedule():
    def adam(model, lr):
        groups = [{"params": model.a.parameters()}, {"params": model.b.parameters(), "lr": 2 * lr}]
        return torch.optim.Adam(groups, lr=lr)

    optimiser, scheduler = _resumed(adam, lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda e: 0.5**e), 2)
    assert [g["lr"] for g in optimiser.param_groups] == pytest.approx([0.3 * 0.25, 0.6 * 0.25])
    assert scheduler.base_lrs == pytest.approx([0.3, 0.6])
    scheduler.step()
    assert [g["lr"] for g in optimiser.param_groups] == pytest.approx([0.3 * 0.125, 0.6 * 0.125])

    optimiser, _ = _resumed(adam, lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10), 3)
    factor = (1 + math.cos(math.pi * 3 / 10)) / 2  # where the cosine stands after 3 of 10 epochs
    assert [g["lr"] for g in optimiser.param_groups] == pytest.approx([0.3 * factor, 0.6 * factor])


def test_other_optimiser_settings_take_the_new_values_and_the_state_stays():
    def sgd(model, lr):
        return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9 if lr == 0.1 else 0.5)

    optimiser, _ = _resumed(sgd, lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda e: 1.0), 1)
    assert optimiser.param_groups[0]["momentum"] == 0.5 and optimiser.param_groups[0]["lr"] == 0.1
    assert all("momentum_buffer" in state for state in optimiser.state.values())
