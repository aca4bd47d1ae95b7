"""The figure callbacks' time budget: they draw on the last epoch, the first time early when the fit is projected to
last a minute or more, and in between only within budget."""

from __future__ import annotations

from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from torch.utils.data import DataLoader, TensorDataset

from event_lightning.callbacks.figure_budget import FigureTimeBudget
from event_lightning.callbacks.tensorboard_figures.periodic import _PeriodicFigureCallback

EPOCH_S = 10.0  # fake training seconds per epoch (one batch): 30 epochs are a long fit


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Ticks(pl.Callback):
    """Advances the fake clock by a training epoch's worth at every training batch."""

    def __init__(self, clock: FakeClock, epoch_s: float) -> None:
        self.clock, self.epoch_s = clock, epoch_s

    def on_train_batch_end(self, *args: Any) -> None:
        self.clock.now += self.epoch_s


class _CostlyFigure(_PeriodicFigureCallback):
    """Records the epochs it draws in; each drawing costs ``cost_s`` on the fake clock."""

    def __init__(self, clock: FakeClock, cost_s: float, time_budget: float | None, every_n_epochs: int = 1) -> None:
        super().__init__(every_n_epochs, "CostlyFigure", time_budget)
        self.figure_budget.clock = clock
        self.clock, self.cost_s = clock, cost_s
        self.drawn_epochs: list[int] = []

    def _log_first_batch(self, writer: Any, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any) -> None:
        self.clock.now += self.cost_s
        self.drawn_epochs.append(trainer.current_epoch)


class _Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).square().mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self.layer(batch[0]).square().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _fit(tmp_path, callbacks: list[pl.Callback], clock: FakeClock, max_epochs: int, epoch_s: float = EPOCH_S) -> None:
    loader = DataLoader(TensorDataset(torch.ones(2, 2)), batch_size=2)
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        num_sanity_val_steps=0,
        logger=TensorBoardLogger(tmp_path, name="budget"),
        callbacks=[_Ticks(clock, epoch_s), *callbacks],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(_Tiny(), loader, loader)


def test_budget_draws_first_last_and_in_between_only_within_its_share():
    clock = FakeClock()
    budget = FigureTimeBudget(0.1, clock=clock)
    budget.start(n_callbacks=1)
    clock.now = 1.0
    assert budget.allows(final=False)  # the first drawing, whatever it costs
    with budget.drawing():
        clock.now += 0.5
    assert (budget.draws, budget.drawn_s, budget.last_draw_s) == (1, 0.5, 0.5)
    clock.now = 14.9  # 0.5 s drawn + two more drawings of 0.5 s need 15 s at 10 %
    assert not budget.allows(final=False)
    assert budget.allows(final=True)  # the last epoch always draws
    clock.now = 15.0
    assert budget.allows(final=False)
    shared = FigureTimeBudget(0.1, clock=clock)
    shared.start(n_callbacks=2)  # two callbacks: 5 % each
    with shared.drawing():
        clock.now += 0.5
    assert not shared.allows(final=False)
    clock.now = 15.0 + 30.5
    assert shared.allows(final=False)
    assert FigureTimeBudget(None, clock=clock).allows(final=False)
    with pytest.raises(ValueError, match="time_budget"):
        FigureTimeBudget(1.5)


def test_first_drawing_waits_for_a_fit_projected_to_last_a_minute():
    clock = FakeClock()
    budget = FigureTimeBudget(0.05, clock=clock)
    budget.start(n_callbacks=1)
    clock.now = 5.0
    assert not budget.allows(final=False, progress=0.1)  # 50 s projected: the last epoch shows the figures
    assert budget.allows(final=True, progress=1.0)
    assert budget.allows(final=False, progress=0.05)  # 100 s projected: the figures early
    assert budget.allows(final=False, progress=None)  # no max_epochs / max_steps: a long fit


def test_a_fit_shorter_than_a_minute_draws_only_on_its_last_epoch(tmp_path):
    clock = FakeClock()
    short = _CostlyFigure(clock, cost_s=0.2, time_budget=0.05)
    _fit(tmp_path, [short], clock, max_epochs=10, epoch_s=1.0)  # a stand-in's 10 s fit
    assert short.drawn_epochs == [9]
    assert short.figure_budget.drawn_s <= 0.05 * clock.now


def test_callback_within_budget_draws_first_and_last_epoch_and_stays_under_its_share(tmp_path):
    clock = FakeClock()
    costly = _CostlyFigure(clock, cost_s=2.0, time_budget=0.05)
    _fit(tmp_path, [costly], clock, max_epochs=30)
    drawn = costly.drawn_epochs
    # 2 s drawings in 10 s epochs at 5 %: one per 40 s of training once the first has been paid for,
    # with the last epoch's drawing reserved all along
    assert drawn == [0, 11, 15, 19, 23, 26, 29]
    assert costly.figure_budget.drawn_s <= 0.05 * clock.now


def test_without_budget_every_candidate_epoch_draws_and_the_last_one_too(tmp_path):
    clock = FakeClock()
    every_epoch = _CostlyFigure(clock, cost_s=0.2, time_budget=None)
    every_third = _CostlyFigure(clock, cost_s=0.2, time_budget=None, every_n_epochs=3)
    _fit(tmp_path, [every_epoch, every_third], clock, max_epochs=5)
    assert every_epoch.drawn_epochs == [0, 1, 2, 3, 4]
    assert every_third.drawn_epochs == [0, 3, 4]  # 4: the fit's last epoch


def test_callbacks_share_the_budget(tmp_path):
    clock = FakeClock()
    alone = _CostlyFigure(clock, cost_s=2.0, time_budget=0.05)
    _fit(tmp_path / "alone", [alone], clock, max_epochs=30)
    clock = FakeClock()
    pair = [_CostlyFigure(clock, cost_s=2.0, time_budget=0.05) for _ in range(2)]
    _fit(tmp_path / "pair", pair, clock, max_epochs=30)
    assert all(len(c.drawn_epochs) < len(alone.drawn_epochs) for c in pair)
    assert sum(c.figure_budget.drawn_s for c in pair) <= 0.05 * clock.now
