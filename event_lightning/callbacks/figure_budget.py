"""A time budget for figure callbacks: draw only while the figures' share of the training time stays small.

A fixed period (``every_n_epochs``) cannot suit every machine and dataset: a stand-in's epoch may
last a second, a real one an hour, while a matplotlib figure costs about the same in both. Each
figure callback therefore measures its own drawing time and the wall time since training started,
and draws on a candidate epoch (one its period allows) only while its share stays under
``share / n`` (``n``: the budgeted figure callbacks on the trainer, so that all of a run's figures
together stay under ``share``). The drawing on the last epoch of the fit (``max_epochs`` or
``max_steps`` reached, or a stop already requested) is always made, so that every run shows
figures. The first drawing comes as early as it can in a fit projected (from its time so far and
its progress towards ``max_epochs`` / ``max_steps``) to train for at least ``early_after_s``
(60 s): there the figures are worth seeing before the end. A shorter fit shows them within a
minute anyway, on its last epoch, and draws only then: two drawings would be a large share of
it (a stand-in's ten epochs of 0.2 s against figures of 0.1-0.3 s each). After the first, the last
one is reserved: an intermediate drawing happens only when the time drawn so far plus two
drawings (this one and the last, each costing as much as the previous drawing) fit the budget,
so the whole run stays under the budget once it lasts longer than the forced drawings need.

The clock is injectable (``FigureTimeBudget.clock``) for tests; reading it is no host sync.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytorch_lightning as pl
from pytorch_lightning.trainer.states import TrainerFn

DEFAULT_SHARE = 0.05
EARLY_AFTER_S = 60.0


@dataclass
class FigureTimeBudget:
    """One callback's drawing time against the training wall time (seconds of ``clock``).

    Attributes:
        share: the most that all of the run's budgeted figures may take of the training wall time
            (0.05: 5 %); None draws on every candidate epoch.
        clock: seconds, monotonic (``time.perf_counter``).
        early_after_s: the projected training time from which a fit draws before its last epoch.
    """

    share: float | None = DEFAULT_SHARE
    clock: Callable[[], float] = time.perf_counter
    early_after_s: float = EARLY_AFTER_S
    n_callbacks: int = 1
    started_at: float | None = None
    drawn_s: float = 0.0
    last_draw_s: float = 0.0
    draws: int = 0

    def __post_init__(self) -> None:
        if self.share is not None and not 0 < self.share <= 1:
            raise ValueError(
                f"time_budget must be in (0, 1] (a share of the training time) or null, found {self.share}"
            )

    def start(self, n_callbacks: int) -> None:
        """Start counting a fit's training time; ``n_callbacks`` budgeted figure callbacks share ``share``."""
        self.n_callbacks = max(1, n_callbacks)
        self.started_at = self.clock()
        self.drawn_s, self.last_draw_s, self.draws = 0.0, 0.0, 0

    def allows(self, final: bool, progress: float | None = None) -> bool:
        """Whether to draw now: always outside a fit and on the last epoch; the first time when the fit
        is projected to train for ``early_after_s`` or longer; later within budget.

        ``progress``: the share of the fit done, in (0, 1] (None: unbounded, a long fit).
        """
        if self.share is None or self.started_at is None or final:
            return True
        elapsed = self.clock() - self.started_at
        if self.draws == 0:
            return progress is None or elapsed >= self.early_after_s * progress
        return self.drawn_s + 2 * self.last_draw_s <= self.share / self.n_callbacks * elapsed

    @contextmanager
    def drawing(self) -> Iterator[None]:
        """Time the drawing inside the ``with`` block as one drawing of this callback."""
        begin = self.clock()
        try:
            yield
        finally:
            self.last_draw_s = self.clock() - begin
            self.drawn_s += self.last_draw_s
            self.draws += 1


def budgeted_callbacks(trainer: pl.Trainer) -> int:
    """How many of the trainer's callbacks draw under a :class:`FigureTimeBudget` (attribute ``figure_budget``)."""
    return sum(isinstance(getattr(c, "figure_budget", None), FigureTimeBudget) for c in trainer.callbacks)


def is_last_epoch(trainer: pl.Trainer) -> bool:
    """Whether the current epoch is the fit's last: ``max_epochs`` or ``max_steps`` reached, or a stop requested."""
    if trainer.should_stop:
        return True
    max_epochs = trainer.max_epochs
    if max_epochs is not None and max_epochs > 0 and trainer.current_epoch >= max_epochs - 1:
        return True
    return trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps


def fit_progress(trainer: pl.Trainer) -> float | None:
    """The share of the fit done once the current epoch ends, by ``max_epochs`` or ``max_steps``
    (whichever ends the fit first), in (0, 1]; None when neither bounds it."""
    shares = []
    if trainer.max_epochs is not None and trainer.max_epochs > 0:
        shares.append((trainer.current_epoch + 1) / trainer.max_epochs)
    if trainer.max_steps > 0:
        shares.append(max(trainer.global_step, 1) / trainer.max_steps)
    return min(1.0, max(shares)) if shares else None


def draws_now(trainer: pl.Trainer, every_n_epochs: int, budget: FigureTimeBudget) -> bool:
    """Whether a figure callback draws in the current epoch (global rank 0, never in the sanity check).

    Outside ``fit`` (``validate``): on epochs that are multiples of ``every_n_epochs``. In ``fit``: on
    those and on the last epoch, when ``budget`` allows it (given :func:`fit_progress`).
    """
    if trainer.sanity_checking or not trainer.is_global_zero:
        return False
    if trainer.state.fn != TrainerFn.FITTING:
        return trainer.current_epoch % every_n_epochs == 0
    final = is_last_epoch(trainer)
    return (final or trainer.current_epoch % every_n_epochs == 0) and budget.allows(final, fit_progress(trainer))
