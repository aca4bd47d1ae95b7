"""``python -m bench --gpu-preflight`` on the CPU at tiny shapes (so the GPU command cannot rot),
its time budget, and the GPU section it writes into docs/performance.md without touching the rest."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `bench/` is a top-level folder, not part of the package
    sys.path.insert(0, str(REPO_ROOT))

from bench.config_cases import CASES, ONE_PER_METHOD, case_named, one_per_graph  # noqa: E402
from bench.gpu_preflight import PreflightOptions, default_configs, run_configs  # noqa: E402
from bench.measure import BenchConfig  # noqa: E402
from bench.page import GPU_END, GPU_START, gpu_section, write_gpu_section, write_markdown  # noqa: E402
from bench.results import Results  # noqa: E402
from bench.run import main  # noqa: E402


def test_every_config_has_a_case_and_every_method_comes_first():
    assert sorted(c.name for c in CASES) == sorted(p.stem for p in (REPO_ROOT / "config").glob("*.yaml"))
    names = default_configs()
    assert names[: len(ONE_PER_METHOD)] == list(ONE_PER_METHOD)
    assert len(names) == len(set(names)) == len({c.graph for c in CASES}) == len(one_per_graph())
    assert {case_named(n).method for n in ONE_PER_METHOD} == {"lif", "hgvae", "event2vec", "pose", "tvae"}


def test_the_gpu_section_replaces_itself_and_keeps_the_rest_of_the_page(tmp_path):
    page = tmp_path / "performance.md"
    page.write_text("# Performance\n\nCPU rows.\n")
    write_gpu_section(page, "## GPU preflight\n\nfirst\n")
    write_gpu_section(page, "## GPU preflight\n\nsecond\n")
    text = page.read_text()
    assert text.startswith("# Performance\n\nCPU rows.\n") and text.count(GPU_START) == text.count(GPU_END) == 1
    assert "second" in gpu_section(text) and "first" not in text
    # the full CPU benchmark rewrites the page and keeps the GPU section
    write_markdown(Results(), page, BenchConfig.make(quick=True), 1.0)
    text = page.read_text()
    assert "CPU rows." not in text and "second" in gpu_section(text)


def test_configs_past_the_budget_are_listed_as_not_run(tmp_path):
    options = PreflightOptions(device="cpu", configs=["quickstart", "lif_pokerdvs"], budget_s=0)
    rows = run_configs(options, tmp_path, deadline=0.0)
    assert [r["config"] for r in rows] == ["quickstart", "lif_pokerdvs"]
    assert all(r["not_run"] and not r["ok"] and "time budget" in r["error"] for r in rows)


@pytest.mark.slow
def test_cpu_preflight_reports_a_failing_config_and_goes_on(tmp_path, capsys):
    page = tmp_path / "performance.md"
    page.write_text("# Performance\n\nCPU rows.\n")
    status = main(
        ["--gpu-preflight", "--device", "cpu", "--tiny", "--configs", "no_such_config", "quickstart"]
        + ["--output", str(page)]
    )
    out = capsys.readouterr().out
    assert status == 1  # one config failed
    assert "FAIL     no_such_config: " in out and "PASS     quickstart: first compiled step" in out
    assert "PASS     lif: loss abs diff" in out and "PASS     binning: identical frames" in out
    text = page.read_text()
    assert text.startswith("# Performance\n\nCPU rows.\n")
    section = gpu_section(text)
    assert "on **CPU (" in section and "1 of 2 configs passed" in section
    assert "| quickstart (batch 2) | pass |" in section and "| no_such_config | FAIL |" in section
