"""The figure-cost bench rows: a config's whole run, its prerequisite checkpoint, and the profiler's split."""

from __future__ import annotations

from bench import rows_figures
from bench.measure import BenchConfig
from bench.results import Results
from bench.rows_figures import REPO, figure_cost, fit_prerequisite, run_figure_rows

CONFIG = REPO / "config"


def test_a_config_without_a_prerequisite_checkpoint_fits_nothing_first(tmp_path):
    fit_prerequisite(CONFIG / "quickstart.yaml", tmp_path)
    fit_prerequisite(CONFIG / "pose_cnn_synthetic.yaml", tmp_path)
    assert not any(tmp_path.iterdir())


def test_the_hybrid_pose_configs_get_the_cnn_they_start_from_first(tmp_path, monkeypatch):
    fitted = []
    monkeypatch.setattr(rows_figures, "_fit_quietly", lambda args, workdir: fitted.append((list(args), workdir)))
    for name in ("pose_hybrid_cnn_rnn_synthetic", "pose_hybrid_cnn_snn_synthetic"):
        fit_prerequisite(CONFIG / f"{name}.yaml", tmp_path)
    cnn = ["fit", "--config", str(CONFIG / "pose_cnn_synthetic.yaml"), "--trainer.max_epochs", "1"]
    assert fitted == [(cnn, tmp_path), (cnn, tmp_path)]
    checkpoint = tmp_path / "runs/pose_cnn_synthetic/version_0/checkpoints/last.ckpt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.touch()
    fit_prerequisite(CONFIG / "pose_hybrid_cnn_rnn_synthetic.yaml", tmp_path)
    assert len(fitted) == 2  # already there: not fitted again


def test_figure_time_is_split_from_the_training_time(tmp_path, quick, tiny_digits):
    tiny = quick.args(tmp_path / "runs", tiny_digits)[2:]  # the tiny data and quiet trainer, not the config
    cost = figure_cost(CONFIG / "quickstart.yaml", tmp_path, [*tiny, "--trainer.max_epochs", "3"])
    assert cost.epochs == 3
    assert cost.figure_callbacks == ("InputFigureLogger", "SpikeRasterLogger", "ConfusionMatrixLogger")
    assert 0 < cost.figure_s < cost.epoch_s  # the figures run inside the epochs they are timed against
    assert cost.share == cost.figure_s / cost.epoch_s


def test_a_config_that_cannot_run_is_a_skipped_row():
    results = Results()
    run_figure_rows(BenchConfig.make(quick=True), results, names=["no_such_config"])
    assert results.rows == [] and results.skipped[0].operation == "figures of no_such_config"
