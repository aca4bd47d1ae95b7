"""Smoke test of the benchmark suite: a tiny representation row against tonic, and the table."""

import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `bench/` is a top-level folder, not part of the package
    sys.path.insert(0, str(REPO_ROOT))

from bench.goals import goal_lines  # noqa: E402
from bench.measure import BenchConfig, median_time  # noqa: E402
from bench.results import Results, Row  # noqa: E402
from bench.rows_represent import KERNELS, fitted_exponent, run_representation_rows  # noqa: E402
from bench.table import HEADER, format_markdown_table, format_text_table  # noqa: E402
from event_lightning.nn.lif import input_projection  # noqa: E402


def test_tiny_representation_rows_have_ratio_and_agreement():
    results = Results()
    run_representation_rows(BenchConfig(quick=True, warmup=0, repeats=1), results, n_events=20_000, first_calls=False)
    operations = [row.operation for row in results.rows]
    assert any(op.startswith("to_frame(") for op in operations)
    expected = {"voxel_grid(16 bins)", "denoise(filter_time=10 ms)", "refractory_period(delta=1 ms)"}
    assert expected <= set(operations)
    copies = [row for row in results.rows if row.operation.startswith("memory bandwidth")]  # main memory, stream-sized
    assert len(copies) == 2 and all("GB/s" in row.note for row in copies)
    labels = {kernel.label for kernel in KERNELS}
    for row in results.rows:
        if row.operation in labels:
            assert row.ours_s > 0 and row.peer_s > 0 and "% of the main-memory copy" in row.note
        if row.peer_s is not None:
            assert row.ratio == pytest.approx(row.peer_s / row.ours_s)
            assert row.agree == "identical", row  # our outputs equal tonic's on the same events
    # the floors measured beside the kernels: fresh output memory, page faults, voxel_grid's adds
    floors = [row for row in results.rows if row.operation.startswith(("fresh output", "page faults", "voxel_grid's"))]
    assert len(floors) == 3 and all(row.ours_s > 0 and (row.peer_s or "%" in row.note) for row in floors)
    text = format_text_table(results)
    assert "ratio" in text.splitlines()[0] and "outputs agree" in text.splitlines()[0]
    markdown = format_markdown_table(results).splitlines()
    assert markdown[0].count("|") == len(HEADER) + 1
    assert len(markdown) == 2 + len(results.rows)


def test_median_time_counts_calls():
    calls = []
    elapsed = median_time(lambda: calls.append(1), BenchConfig(quick=True, warmup=2, repeats=3))
    assert len(calls) == 5 and elapsed >= 0


def test_fitted_exponent_recovers_power_law():
    sizes = [10, 100, 1000]
    assert fitted_exponent(sizes, [2e-3 * n**1.5 for n in sizes]) == pytest.approx(1.5)


def _uses_sparse_product(out: torch.Tensor) -> bool:
    names, pending = [], [out.grad_fn]
    while pending:  # the autograd graph of the projection is a few nodes deep
        node = pending.pop()
        if node is not None:
            names.append(type(node).__name__)
            pending += [child for child, _ in node.next_functions]
    return any("Sparse" in name for name in names)


def test_sparse_input_projection_matches_dense():
    # the benchmarked LIF layer projects sparse event frames with a sparse product: same values
    # and weight gradient as the dense F.linear up to float summation order
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(50, 8, 300, generator=generator) < 0.02).float() * 2.0
    weight = torch.randn(16, 300, generator=generator, requires_grad=True)
    grad = torch.randn(50, 8, 16, generator=generator)
    sparse_out = input_projection(x, weight)
    (sparse_grad,) = torch.autograd.grad(sparse_out, weight, grad)
    dense_out = torch.nn.functional.linear(x, weight)
    (dense_grad,) = torch.autograd.grad(dense_out, weight, grad)
    assert _uses_sparse_product(sparse_out)
    torch.testing.assert_close(sparse_out, dense_out, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(sparse_grad, dense_grad, rtol=1e-6, atol=1e-5)
    # dense inputs keep the dense product
    assert not _uses_sparse_product(input_projection(torch.ones(50, 8, 300), weight))


def test_growth_goals_fit_exponents_per_operation():
    sizes = [10_000, 100_000, 1_000_000]
    rows = [Row("growth", "linear", f"{n:,} events", 1e-9 * n) for n in sizes]
    rows += [Row("growth", "linear: peak memory", f"{n:,} events", 13.0 * n, unit="B") for n in sizes]
    rows += [Row("represent", "downsample(x)", "500k", 1.0, "tonic", 4.0, "identical")]
    lines = goal_lines(Results(rows), issue=20)
    growth = [line for line in lines if "exponent" in line]
    assert len(growth) == 2 and all("largest exponent 1.00" in line and line.endswith("**met**") for line in growth)
    downsample = next(line for line in lines if "downsample" in line)
    assert "worst measured ratio 4.0x" in downsample and "NOT met" in downsample
    rows[2] = Row("growth", "linear", "1,000,000 events", 1e-9 * 1_000_000**1.5)  # super-linear at the end
    assert "NOT met" in goal_lines(Results(rows), issue=20)[-2]


def test_goal_lines_use_worst_ratio_and_agreement():
    rows = [
        Row("represent", "to_frame(a)", "s", 1.0, "tonic", 12.0, "identical"),
        Row("represent", "to_frame(b)", "s", 1.0, "tonic", 5.0, "identical"),
        Row("represent", "denoise(x)", "s", 1.0, "tonic", 200.0, "DIFFERENT"),
        Row("lif", "LIF classifier step", "s", 1.0, "norse", 3.5, "loss abs diff 0.0e+00"),
    ]
    lines = goal_lines(Results(rows))
    assert "worst measured ratio 5.0x" in lines[0] and "NOT met" in lines[0]
    assert "not measured" in lines[1]  # no voxel row
    assert "outputs DIFFER" in lines[2] and "NOT met" in lines[2]
    assert lines[3].endswith("**met**")
