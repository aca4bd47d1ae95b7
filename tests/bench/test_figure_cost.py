"""The figure-cost bench rows: the period a config's figures repeat over, and the profiler's split."""

from __future__ import annotations

from bench.measure import BenchConfig
from bench.results import Results
from bench.rows_figures import REPO, figure_cost, figure_period, run_figure_rows

CONFIG = REPO / "config"


def test_the_period_holds_one_drawing_of_every_figure():
    assert figure_period(CONFIG / "quickstart.yaml") == 3  # every 3 epochs, validation every epoch
    assert figure_period(CONFIG / "pose_cnn_synthetic.yaml") == 5
    assert figure_period(CONFIG / "pose_snn_synthetic.yaml") == 4  # every 5, capped at max_epochs 4
    assert figure_period(CONFIG / "tvae_2d_mnist_synthetic.yaml") == 5  # validation every 5 epochs


def test_figure_time_is_split_from_the_training_time(tmp_path, quick, tiny_digits):
    tiny = quick.args(tmp_path / "runs", tiny_digits)[2:]  # the tiny data and quiet trainer, not the config
    cost = figure_cost(CONFIG / "quickstart.yaml", tmp_path, tiny)
    assert cost.epochs == 3
    assert cost.figure_callbacks == ("InputFigureLogger", "SpikeRasterLogger", "ConfusionMatrixLogger")
    assert 0 < cost.figure_s < cost.epoch_s  # the figures run inside the epochs they are timed against
    assert cost.share == cost.figure_s / cost.epoch_s


def test_a_config_that_cannot_run_is_a_skipped_row():
    results = Results()
    run_figure_rows(BenchConfig.make(quick=True), results, names=["no_such_config"])
    assert results.rows == [] and results.skipped[0].operation == "figures of no_such_config"
