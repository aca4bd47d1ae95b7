"""What the figures a config logs by default cost: their share of the training time (goal: under 5 %).

For each synthetic config that lists figure callbacks, :func:`figure_cost` fits it through the real
entrypoint, on its own data, for its whole run (the config's ``max_epochs``): the figure callbacks
keep to a time budget over the run (:mod:`event_lightning.callbacks.figure_budget`; the last epoch
always draws, the first one too in a fit projected to last a minute or more), so the share is what
a user's run of the config pays. Lightning's
``SimpleProfiler`` times every callback hook; the share is the time inside the figure callbacks'
hooks over the time of the training epochs (validation and the figures themselves included). The
stand-ins are written before the first epoch and are not counted. A config that starts from
another run's checkpoint (the hybrid pose models' ``cnn_checkpoint``) gets it first, from a
one-epoch fit of that config in the same folder, as the docs order them.

Row: ours = figure seconds per epoch, peer = the epoch's seconds, agree = ``yes`` under 5 %; the
note splits the figure time per callback.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def _fit_quietly(args: Sequence[str], workdir: Path) -> Any:
    from event_lightning.cli import main

    cwd = Path.cwd()
    os.chdir(workdir)
    try:
        return main([*args, "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"])
    finally:
        os.chdir(cwd)


def fit_prerequisite(config: Path, workdir: Path) -> None:
    """Fit, for one epoch in ``workdir``, the config whose checkpoint ``config`` starts from (``model.init_args.
    cnn_checkpoint: runs/<config>/...``), when ``config`` names one that is not there yet."""
    checkpoint = ((yaml.safe_load(config.read_text()).get("model") or {}).get("init_args") or {}).get("cnn_checkpoint")
    if not checkpoint or (workdir / checkpoint).exists():
        return
    parts = Path(checkpoint).parts
    if len(parts) < 2 or parts[0] != "runs":
        raise ValueError(f"{config.name}: cannot tell which config writes its cnn_checkpoint {checkpoint}")
    _fit_quietly(["fit", "--config", str(config.parent / f"{parts[1]}.yaml"), "--trainer.max_epochs", "1"], workdir)


def figure_cost(config: Path, workdir: Path, extra: Sequence[str] = ()) -> FigureCost:
    """Fit ``config`` for its whole run in ``workdir`` (its data and runs go there) and time the figures."""
    fit_prerequisite(config, workdir)
    args = ["fit", "--config", str(config)]
    args += ["--trainer.profiler", "pytorch_lightning.profilers.SimpleProfiler"]
    args += ["--trainer.profiler.init_args.dirpath", str(workdir), "--trainer.profiler.init_args.filename", "profile"]
    cli = _fit_quietly([*args, *extra], workdir)
    durations = cli.trainer.profiler.recorded_durations
    per_callback = {
        type(c).__name__: sum(
            sum(times) for action, times in durations.items() if action.startswith(f"[Callback]{c.state_key}.")
        )
        for c in cli.trainer.callbacks
        if _is_figure_callback(c)
    }
    epochs = cli.trainer.current_epoch  # the epochs run (max_epochs unless ``extra`` stops it sooner)
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
            verdict = f"{'under' if cost.share < GOAL_SHARE else 'OVER'} the {GOAL_SHARE:.0%} goal"
            print(f"[{GROUP}] {name}: figures {cost.share:.1%} of the epochs' time, {verdict}", flush=True)
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
