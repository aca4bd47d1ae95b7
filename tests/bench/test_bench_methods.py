"""Smoke tests of the per-method benchmark groups (rows 4-6 of issue 7) in their smallest setting,
and the DHP19 bytes-per-sample arithmetic on a tiny window configuration."""

import gc
import math
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `bench/` is a top-level folder, not part of the package
    sys.path.insert(0, str(REPO_ROOT))

from bench.configs import build_datamodule, build_model, read_config  # noqa: E402
from bench.goals import goal_lines  # noqa: E402
from bench.measure import BenchConfig  # noqa: E402
from bench.results import Results, Row  # noqa: E402
from bench.rows_e2v_data import DatapathShape, run_event2vec_datapath_rows  # noqa: E402
from bench.rows_memory import (  # noqa: E402
    PoseWindowLayout,
    dhp19_datamodule,
    reference_sample_bytes,
    run_dhp19_memory_rows,
)
from bench.rows_methods import METHOD_CASES, run_method_rows  # noqa: E402
from bench.table import format_bytes, format_markdown_table  # noqa: E402
from bench.training import StepTimer, fit_on_batches, peak_from_memory_records  # noqa: E402

TINY = BenchConfig(quick=True, warmup=0, repeats=1)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The bench's default (``--threads 1``): on a shared 2-core box more threads make each step wait."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _positive(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def _check_method_rows(results: Results, names: list[str]) -> None:
    assert results.skipped == []
    for name in names:
        rows = {r.operation.split(":")[0]: r for r in results.rows if r.operation.endswith(name)}
        assert set(rows) == {"cold epoch", "cached epoch", "train step", "peak train-step memory"}, rows
        for kind in ("cold epoch", "cached epoch"):
            row = rows[kind]  # loader seconds per sample against the training step's seconds per sample
            assert _positive(row.ours_s) and _positive(row.peer_s), row
            assert row.ratio == pytest.approx(row.peer_s / row.ours_s)
        assert _positive(rows["train step"].ours_s)
        memory = rows["peak train-step memory"]
        assert memory.unit == "B" and _positive(memory.ours_s)
        # the training step's consumption is its step time over its batch size
        batch = int(rows["train step"].size.split()[-1])
        assert rows["cached epoch"].peer_s == pytest.approx(rows["train step"].ours_s / batch)


def test_lif_method_rows_smallest():
    results = Results()
    run_method_rows(TINY, results, names=["LIF classifier"], steps=1)
    _check_method_rows(results, ["LIF classifier (quickstart N-MNIST)"])


@pytest.mark.slow
@pytest.mark.parametrize("name", [case.name for case in METHOD_CASES if "LIF" not in case.name])
def test_every_method_produces_rows(name):
    results = Results()
    run_method_rows(TINY, results, names=[name], steps=1)
    _check_method_rows(results, [name])


def test_event2vec_datapath_rows_tiny():
    results = Results()
    shape = DatapathShape(classes=2, per_class=20, events=3000, batch=8, d_model=16)
    run_event2vec_datapath_rows(TINY, results, shape)
    assert [r.operation for r in results.rows] == [
        "Event2Vec loader, per sample",
        "Event2Vec loader + train step, per sample",
    ]
    for row in results.rows:
        assert _positive(row.ours_s) and _positive(row.peer_s) and _positive(row.ratio)


def test_reference_layout_bytes_tiny():
    # T=2 steps, L=2 labels on a 4 (high) x 6 (wide) crop, CNN frames of 3 bins (6 channels)
    layout = PoseWindowLayout(n_steps=2, n_labels=2, height=4, width=6, cnn_bins=3, cnn_frames=2)
    expected = {
        "event_representation": 2 * 2 * 4 * 6 * 4,  # float32 counts
        "label": 2 * 13 * 4 * 6 * 8,  # float64 one-hot maps
        "landmarks": 2 * 2 * 13 * 8,
        "label_3d": 2 * 3 * 13 * 8,
        "ms_start": 8,
        "ms_end": 8,
        "cnn_input": 2 * 6 * 4 * 6 * 4,
    }
    assert reference_sample_bytes(layout) == expected
    pure_snn = PoseWindowLayout(n_steps=2, n_labels=2, height=4, width=6, cnn_bins=3, cnn_frames=0)
    assert "cnn_input" not in reference_sample_bytes(pure_snn)
    # the spec's figure: dense labels of a 10-label window at 256x256 take about 68 MB
    assert 68e6 < reference_sample_bytes(PoseWindowLayout())["label"] < 69e6


def test_dhp19_memory_rows_tiny_configuration(tmp_path):
    # 100 ms windows of 10 ms bins, 10-bin CNN frames, crop pooled 8x to 32x32
    results = Results()
    run_dhp19_memory_rows(TINY, results, downsample=8)
    rows = {r.operation: r for r in results.rows}
    pixels, steps, labels, joints = 32 * 32, 10, 10, 13
    # every entry of one of our samples besides the count frames (float32 coordinates, int64 steps,
    # float64 projection and camera centre, 8-byte collated numbers: pixel_scale, camera, ms_start)
    small = (
        labels * joints * 2 * 4  # landmarks
        + joints * 2 * 4  # cnn_landmarks
        + labels * joints * 3 * 4  # label_3d
        + joints * 3 * 4  # cnn_label_3d
        + labels * 8  # label_steps
        + 3 * 4 * 8  # projection
        + 3 * 8  # camera_centre
        + 3 * 8
    )
    frames = {"sequence": steps * 2 * pixels, "hybrid": (20 + steps * 2 + 20) * pixels}  # count cells
    cnn_frames = {"sequence": 0, "hybrid": 2}
    for mode in ("sequence", "hybrid"):
        # the same stand-in sample, made dense: its non-zero cells are what the loader carries
        datamodule = dhp19_datamodule(tmp_path, mode, downsample=8)
        datamodule.prepare_data()
        dense = datamodule.split("train").dense_sample(0)
        counts = torch.cat([dense[k].flatten() for k in ("cnn_input", "events", "cnn_input_next") if k in dense])
        assert counts.numel() == frames[mode]
        nnz = int(counts.count_nonzero())
        entry = 4 + (1 if counts.max() <= 255 else 2)  # int32 index + uint8 / int16 count
        total = rows[f"bytes per sample: {mode}"]
        assert total.unit == "B"
        assert total.ours_s == nnz * entry + 8 + small  # + the int64 entry count
        assert f"{nnz} non-zero counts" in total.note and f"{format_bytes(frames[mode] * 4)})" in total.note
        reference = (
            steps * 2 * pixels * 4
            + labels * joints * pixels * 8
            + 2 * labels * joints * 8
            + labels * 3 * joints * 8
            + 16
            + cnn_frames[mode] * 20 * pixels * 4
        )
        assert total.peer_s == reference
        assert total.ratio == pytest.approx(reference / total.ours_s)
        label = rows[f"label bytes per sample: {mode}"]
        assert label.ours_s == (labels + 1) * joints * 2 * 4
        assert label.peer_s == labels * joints * pixels * 8
        # the cache file holds the sparse entries behind a .npy header (a multiple of 64 bytes)
        header = rows[f"cache file per sample: {mode}"].ours_s - nnz * entry
        assert header in (64, 128, 192, 256)


def test_peak_from_memory_records_orders_by_time():
    records = [(3, -50), (1, 100), (2, 30), (4, 500), (5, -580)]  # running: 100 130 80 580 0
    assert peak_from_memory_records(records) == 580
    assert peak_from_memory_records([(1, -10)]) == 0
    assert peak_from_memory_records([]) == 0
    # an earlier session's block freed first: the step's own 300 bytes above the low-water mark
    assert peak_from_memory_records([(1, -1000), (2, 200), (3, 100), (4, -300)]) == 300


class _OneMebibyteStep(pl.LightningModule):
    """A linear layer whose training step also allocates 1 MiB that lives until the loss is built."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        scratch = torch.ones(1 << 18)
        return self.layer(batch).sum() + 0.0 * scratch.sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _DropsOldGarbage(pl.Callback):
    """Holds 4 MiB allocated while an earlier step was profiled (as an earlier fit's model holds its
    last gradients) and, once the measured step has started, leaves it to a reference cycle alone:
    garbage that only the collector frees."""

    def __init__(self, batch_idx: int) -> None:
        self.batch_idx = batch_idx
        profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True)
        profiler.start()
        self.block: torch.Tensor | None = torch.ones(1 << 20)
        profiler.stop()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.batch_idx:
            cycle: list = [self.block]
            cycle.append(cycle)
            self.block = None


def test_step_peak_is_not_lowered_by_old_garbage_collected_in_the_step():
    # the profiler records the free of a block allocated in an earlier profiling session; a
    # collection inside the measured step would lower its peak by 4 MiB (to less than 1 MiB)
    timer = StepTimer(warmup=0, steps=1)
    threshold = gc.get_threshold()
    gc.set_threshold(1)  # the collector would run at almost every allocation
    try:
        fit_on_batches(_OneMebibyteStep(), [torch.ones(2, 4)] * 2, [timer, _DropsOldGarbage(1)], accelerator="cpu")
    finally:
        gc.set_threshold(*threshold)
    assert gc.isenabled()
    assert timer.peak_bytes >= 1 << 20


def test_config_building_links_and_dataclasses(tmp_path):
    config = read_config("config/event2vec_synthetic.yaml")
    datamodule = build_datamodule(config, {"root": str(tmp_path), "synthetic": {"samples_per_class": 3}})
    assert type(datamodule.synthetic).__name__ == "SyntheticASLConfig"  # the dict became the dataclass
    assert datamodule.synthetic.samples_per_class == 3 and datamodule.synthetic.num_classes == 6
    model = build_model(config, datamodule, {})
    assert model.hparams.num_classes == datamodule.num_classes == 6  # linked as the CLI links it
    assert not any(tmp_path.iterdir())  # building writes nothing; prepare_data does


def test_goals_without_agreement_and_byte_rows():
    rows = [
        Row("methods", "cached epoch: a", "s", 1.0, "train step consumption", 6.0),
        Row("methods", "cached epoch: b", "s", 1.0, "train step consumption", 3.0),
        Row("dhp19_mem", "bytes per sample: hybrid", "w", 2e6, "reference", 3e8, unit="B"),
    ]
    lines = goal_lines(Results(rows))
    cached = next(line for line in lines if "Cached epochs" in line)
    assert "worst measured ratio 3.0x" in cached and "NOT met" in cached
    dhp19 = next(line for line in lines if "DHP19" in line)
    assert "150.0x" in dhp19 and dhp19.endswith("**met**")
    table = format_markdown_table(Results(rows))
    assert "| 2.00 MB |" in table and "| 300.00 MB |" in table


def test_a_floor_row_sharing_a_goals_prefix_does_not_count_as_a_disagreement():
    rows = [
        Row("represent", "voxel_grid(16 bins)", "500k ev", 1.0, "tonic ToVoxelGrid", 12.0, agree="identical"),
        Row("represent", "voxel_grid's scattered adds alone", "1000k adds", 1.1),
    ]
    line = next(line for line in goal_lines(Results(rows)) if line.startswith("- voxel_grid"))
    assert "worst measured ratio 12.0x, outputs agree" in line and line.endswith("**met**")
    rows.append(Row("represent", "voxel_grid(4 bins)", "500k ev", 1.0, "tonic ToVoxelGrid", 11.0, agree="NO: 3 cells"))
    line = next(line for line in goal_lines(Results(rows)) if line.startswith("- voxel_grid"))
    assert "outputs DIFFER" in line and line.endswith("**NOT met**")
