"""What the figures a config logs by default cost: their share of the training time (goal: under 5 %).

For each synthetic config that lists figure callbacks, :func:`figure_cost` fits it through the real
entrypoint, on its own data, for one figure period: ``k`` epochs, ``k`` the least common multiple
of the figure callbacks' ``every_n_epochs`` and the validation interval, capped at the config's
``max_epochs``. Every figure is drawn at least once in those epochs, so the share is what the
figures cost on average over a run. Lightning's ``SimpleProfiler`` times every callback hook; the
share is the time inside the figure callbacks' hooks over the time of the training epochs
(validation and the figures themselves included). The stand-ins are written before the first
epoch and are not counted.

Row: ours = figure seconds per epoch, peer = the epoch's seconds, agree = ``yes`` under 5 %; the
note splits the figure time per callback.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.measure import BenchConfig
from bench.results import Results, Row, Skipped

GROUP = "figures"
REPO = Path(__file__).resolve().parent.parent
GOAL_SHARE = 0.05

# The synthetic configs of the methods whose figures the default callbacks draw (HG-VAE's are its
# own: they are measured too, as every config's figures count).
CONFIGS = (
    "quickstart",
    "lif_pokerdvs_synthetic_figures",
    "event2vec_synthetic",
    "pose_cnn_synthetic",
    "pose_rnn_synthetic",
    "pose_snn_synthetic",
    "pose_hybrid_cnn_rnn_synthetic",
    "pose_hybrid_cnn_snn_synthetic",
    "tvae_Lpartial_mnist_synthetic",
    "nontvae_mnist_synthetic",
    "hgvae_nmnist_synthetic",
)
QUICK_CONFIGS = ("quickstart", "event2vec_synthetic", "pose_cnn_synthetic")


@dataclass(frozen=True)
class FigureCost:
    """Figure time against training time of one config's run (seconds over the ``epochs`` run)."""

    config: str
    epochs: int
    per_callback_s: dict[str, float]
    epoch_s: float

    @property
    def figure_callbacks(self) -> tuple[str, ...]:
        return tuple(self.per_callback_s)

    @property
    def figure_s(self) -> float:
        return sum(self.per_callback_s.values())

    @property
    def share(self) -> float:
        return self.figure_s / self.epoch_s


def _is_figure_callback(callback: object) -> bool:
    from event_lightning.callbacks.hgvae_figures import HGVAEFigures
    from event_lightning.callbacks.tensorboard_figures.periodic import _PeriodicFigureCallback
    from event_lightning.callbacks.tvae_figures import TVAEFigures

    return isinstance(callback, _PeriodicFigureCallback | TVAEFigures | HGVAEFigures)


def figure_period(config: Path) -> int:
    """Epochs in which every figure of ``config`` is drawn at least once (capped at its ``max_epochs``)."""
    trainer = yaml.safe_load(config.read_text())["trainer"]
    period = trainer.get("check_val_every_n_epoch") or 1
    for callback in trainer.get("callbacks") or []:
        every = (callback.get("init_args") or {}).get("every_n_epochs")
        if every:
            period = math.lcm(period, every)
    return max(1, min(period, trainer.get("max_epochs") or period))


def figure_cost(config: Path, workdir: Path, extra: Sequence[str] = ()) -> FigureCost:
    """Fit ``config`` for one figure period in ``workdir`` (its data and runs go there) and time the figures."""
    from event_lightning.cli import main

    epochs = figure_period(config)
    args = ["fit", "--config", str(config), "--trainer.max_epochs", str(epochs)]
    args += ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    args += ["--trainer.profiler", "pytorch_lightning.profilers.SimpleProfiler"]
    args += ["--trainer.profiler.init_args.dirpath", str(workdir), "--trainer.profiler.init_args.filename", "profile"]
    cwd = Path.cwd()
    os.chdir(workdir)
    try:
        cli = main([*args, *extra])
    finally:
        os.chdir(cwd)
    durations = cli.trainer.profiler.recorded_durations
    per_callback = {
        type(c).__name__: sum(
            sum(times) for action, times in durations.items() if action.startswith(f"[Callback]{c.state_key}.")
        )
        for c in cli.trainer.callbacks
        if _is_figure_callback(c)
    }
    return FigureCost(config.stem, epochs, per_callback, sum(durations.get("run_training_epoch", [])))


def _split(cost: FigureCost) -> str:
    return ", ".join(f"{name} {seconds / cost.epochs * 1e3:.0f} ms" for name, seconds in cost.per_callback_s.items())


def run_figure_rows(cfg: BenchConfig, results: Results, names: Sequence[str] | None = None) -> None:
    """One row per synthetic config (``names``, default :data:`CONFIGS`; the quick pass: three)."""
    with tempfile.TemporaryDirectory(prefix="el_bench_figures_") as tmp:
        for name in names or (QUICK_CONFIGS if cfg.quick else CONFIGS):
            workdir = Path(tmp) / name
            workdir.mkdir()
            try:
                cost = figure_cost(REPO / "config" / f"{name}.yaml", workdir)
            except Exception as error:  # noqa: BLE001 - one broken config must not hide the others' rows
                results.skipped.append(Skipped(GROUP, f"figures of {name}", f"{type(error).__name__}: {error}"))
                continue
            results.rows.append(
                Row(
                    GROUP,
                    f"figures of {name}",
                    f"{cost.epochs} epoch(s)",
                    cost.figure_s / cost.epochs,
                    peer="training epoch",
                    peer_s=cost.epoch_s / cost.epochs,
                    agree="yes" if cost.share < GOAL_SHARE else f"NO: over {GOAL_SHARE:.0%}",
                    note=f"figures {cost.share:.1%} of epoch time ({_split(cost)})",
                )
            )
