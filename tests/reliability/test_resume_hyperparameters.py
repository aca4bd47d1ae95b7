"""A hyperparameter given on resume is used (and announced) or refused before anything is written.

Before: ``--resume last --model.init_args.lr 0.5`` recorded 0.5 in config.yaml and hparams while
the restored optimiser kept 0.002, and ``--model.init_args.hidden_features 50`` rewrote
config.yaml and then failed on a state_dict size mismatch.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import math
import pkgutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import event_lightning.models
from event_lightning.callbacks.resume_overrides import ResumedOptimiserSettings
from event_lightning.cli import main
from event_lightning.resume_rules import FIXED, OPTIMISER, RESUME_RULES, TRAINING, hyperparameter_changes, resume_rules


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory, tiny_digits, quick) -> Path:
    """A quickstart run trained for one epoch; each test resumes a copy of it."""
    runs = tmp_path_factory.mktemp("one_epoch") / "runs"
    main(["fit", *quick.args(runs, tiny_digits, "--trainer.max_epochs", "1")])
    return runs


def _copy_run(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target / "quickstart" / "version_0"


def test_a_learning_rate_given_on_resume_reaches_the_optimiser_and_is_announced(
    tmp_path, one_epoch, tiny_digits, quick, caplog
):
    version = _copy_run(one_epoch, tmp_path / "runs")
    with caplog.at_level(logging.INFO):
        cli = main(
            ["fit", *quick.args(tmp_path / "runs", tiny_digits, "--trainer.max_epochs", "2", "--resume", "last",
                                "--model.init_args.lr", "0.5")]
        )  # fmt: skip
    assert [group["lr"] for group in cli.trainer.optimizers[0].param_groups] == [0.5]
    last = torch.load(version / "checkpoints" / "last.ckpt", weights_only=True)
    assert [group["lr"] for group in last["optimizer_states"][0]["param_groups"]] == [0.5]
    assert last["hyper_parameters"]["lr"] == 0.5
    assert "lr: 0.5" in (version / "config.yaml").read_text()
    assert "model.init_args.lr (checkpoint: 0.002, now: 0.5)" in caplog.text
    # the learning-rate curve shows what the optimiser used: 0.002 in epoch 0, 0.5 after the resume
    accumulator = EventAccumulator(str(version))
    accumulator.Reload()
    assert [round(event.value, 6) for event in accumulator.Scalars("lr-Adam")] == [0.002, 0.5]


def test_a_shape_changed_on_resume_is_refused_before_anything_is_written(
    tmp_path, one_epoch, tiny_digits, quick, capsys
):
    version = _copy_run(one_epoch, tmp_path / "runs")
    before = {p: p.read_bytes() for p in version.rglob("*") if p.is_file()}
    with pytest.raises(SystemExit) as exit_info:
        main(
            ["fit", *quick.args(tmp_path / "runs", tiny_digits, "--trainer.max_epochs", "2", "--resume", "last",
                                "--model.init_args.hidden_features", "50", "--model.init_args.v_th", "0.5")]
        )  # fmt: skip
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "model.init_args.hidden_features (checkpoint: 100, now: 50)" in err
    assert "model.init_args.v_th (checkpoint: 0.3, now: 0.5)" in err and "cannot change" in err
    after = {p: p.read_bytes() for p in version.rglob("*") if p.is_file()}
    assert after == before  # config.yaml, logs and checkpoints untouched
    assert sorted(p.name for p in version.parent.iterdir()) == ["version_0"]


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
