"""The ``reference`` bench group: every rebuilt reference step gives the project's losses on the
same weights and batch, and the check fails when they differ."""

import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `bench/` is a top-level folder, not part of the package
    sys.path.insert(0, str(REPO_ROOT))

from bench.goals import goal_lines  # noqa: E402
from bench.reference import tvae as tvae_reference  # noqa: E402
from bench.reference.event2vec import event2vec_case  # noqa: E402
from bench.reference.harness import copy_weights, loss_agreement, run_case  # noqa: E402
from bench.reference.hgvae import hgvae_case, reference_target  # noqa: E402
from bench.results import Results, Row  # noqa: E402

TINY_CASES = {
    "hgvae": lambda: hgvae_case("N-MNIST", 6, 4),
    "tvae": lambda: tvae_reference.tvae_case(1, n_caps=2, image_size=6),
    "event2vec": lambda: event2vec_case(2, 32, d_model=32),
}


@pytest.mark.parametrize("name", sorted(TINY_CASES))
def test_reference_step_gives_the_projects_losses(name):
    row = run_case(TINY_CASES[name](), "reference", steps=1)
    assert not row.agree.startswith("NO"), row.agree
    assert "equal to 1e-05" in row.agree
    assert row.ours_s > 0 and row.peer_s > 0


def test_loss_check_fails_on_different_weights():
    case = tvae_reference.tvae_case(1, n_caps=2, image_size=6)

    def build_then_move_ours(model):
        step = tvae_reference.build_reference_step(model)
        with torch.no_grad():
            model.net.grouper.mu.add_(5.0)  # the project's step now runs other weights
        return step

    case.build_reference = build_then_move_ours
    assert run_case(case, "reference", steps=1).agree.startswith("NO: loss")


def test_hgvae_agreement_is_judged_in_float64():
    # the three phases' losses agree exactly in float64, where float32 rounding amplified by two
    # optimiser steps could hide or fake a difference; moved weights still fail the check
    row = run_case(TINY_CASES["hgvae"](), "reference", steps=1)
    assert row.agree.startswith("float64 first step: 3 loss(es) equal to 1e-05"), row.agree
    assert "float32 first step:" in row.agree

    case = TINY_CASES["hgvae"]()
    build = case.build_reference

    def build_then_move_ours(model):
        step = build(model)
        with torch.no_grad():
            model.net.mu_head.bias.add_(1.0)
        return step

    case.build_reference = build_then_move_ours
    assert run_case(case, "reference", steps=1).agree.startswith("NO: float64 first step: A")


def test_loss_agreement_is_relative_and_names_missing_losses():
    assert not loss_agreement({"A": 1000.0}, {"A": 1000.005}).startswith("NO")
    assert loss_agreement({"A": 1.0}, {"A": 1.001}).startswith("NO: A")
    assert loss_agreement({}, {"A": 1.0}).startswith("NO: the project's step did not report")


def test_copy_weights_refuses_different_networks():
    with pytest.raises(ValueError, match="shape"):
        copy_weights([torch.nn.Linear(3, 4)], [torch.nn.Linear(4, 3)])
    with pytest.raises(ValueError, match="tensors"):
        copy_weights([torch.nn.Linear(3, 4)], [torch.nn.Linear(3, 4, bias=False)])


def test_hgvae_reference_target_has_the_measured_event_weights():
    # spec 2.2: alpha .97 / beta .92 over 200 bins, one event at t -> 0.006 (t=0), 0.51 (150),
    # 0.67 (190), 0 (199); a constant 1-count input -> about 50
    steps = 200
    weights = reference_target(torch.eye(steps, dtype=torch.float64)[:, :, None, None, None], 0.97, 0.92).flatten()
    assert [round(float(weights[t]), 2) for t in (0, 150, 190, 199)] == [0.01, 0.51, 0.67, 0.0]
    assert float(weights.sum()) == pytest.approx(50, abs=0.1)


def test_reference_goals_report_each_method():
    rows = [
        Row("reference", "train step: HG-VAE N-MNIST", "T=100", 1.0, "ref", 3.0, "1 loss(es) equal to 1e-05"),
        Row("reference", "train step: TVAE Lpartial MNIST", "B=8", 1.0, "ref", 1.2, "1 loss(es) equal to 1e-05"),
        Row("reference", "train step: pose SNN (DHP19)", "T=10", 1.0, "ref", 2.0, "NO: loss 1 vs 2"),
    ]
    lines = {line.split(" training step")[0][2:]: line for line in goal_lines(Results(rows), issue=20)}
    assert lines["HG-VAE"].endswith("**met**")
    assert "NOT met" in lines["TVAE"]
    assert "outputs DIFFER" in lines["pose SNN"]
    assert "not measured" in lines["Event2Vec"]


def test_step_growth_rows_fit_each_series():
    from bench.measure import BenchConfig
    from bench.rows_step_growth import PEAK_NOTE, growth_cases, run_step_growth_rows

    case = next(c for c in growth_cases(quick=True) if c.name.startswith("LIF classifier"))
    results = Results()
    run_step_growth_rows(BenchConfig(quick=True, warmup=0, repeats=1), results, [case])
    assert not results.skipped
    times = [row for row in results.rows if row.unit == "s"]
    assert [row.operation for row in times] == [f"train step over {axis}: {case.name}" for axis in ("batch",) * 2] + [
        f"train step over bins: {case.name}"
    ] * 2
    assert [int(row.size.split()[0]) for row in times] == [*case.batches, *case.lengths]
    assert "fitted exponent: time" in times[1].note and "fitted exponent" not in times[0].note
    peaks = [row for row in results.rows if row.unit == "B"]
    assert PEAK_NOTE in peaks[1].note and "garbage collector" not in peaks[0].note
    lines = [
        line for line in goal_lines(results, issue=20) if "training steps" in line or "training step linear" in line
    ]
    assert len(lines) == 2 and all("largest exponent" in line for line in lines)


def test_case_selection_runs_the_named_method_alone():
    from bench.measure import BenchConfig
    from bench.rows_reference import run_reference_rows

    cfg = BenchConfig(quick=True, warmup=0, repeats=1, cases=("EVENT2vec",))
    assert cfg.selects("Event2Vec ASL-DVS") and not cfg.selects("HG-VAE N-MNIST")
    assert BenchConfig().selects("HG-VAE N-MNIST")  # no selection: every case
    results = Results()
    run_reference_rows(cfg, results)
    assert not results.skipped
    assert [row.operation for row in results.rows] == ["train step: Event2Vec ASL-DVS"]


def test_event2vec_batches_have_the_real_token_counts():
    # every sample full but the few recordings under 255 events, none shorter than the real minimum 195
    from bench.reference.event2vec import event2vec_batches

    lengths = torch.cat([batch.valid_mask.sum(dim=1) for batch in event2vec_batches(400, n=2)])
    assert lengths.min() >= 195 and lengths.max() == 255
    assert 0.9 < (lengths == 255).float().mean() < 1.0


def test_case_selection_runs_both_pose_rows_with_t_and_batch_in_place():
    # also the pose cases' loss check (pure SNN and hybrid), at a tiny size
    from bench.measure import BenchConfig
    from bench.rows_reference import ReferenceSizes, run_reference_rows

    results = Results()
    sizes = ReferenceSizes(hgvae_nmnist=(6, 4), hgvae_gestures=None, tvae_batch=1, pose=(3, 2, 32, 4), steps=1)
    run_reference_rows(BenchConfig(quick=True, warmup=0, repeats=1, cases=("POSE",)), results, sizes)
    assert not results.skipped, results.skipped
    assert [row.operation for row in results.rows] == [
        "train step: pose SNN (DHP19)",
        "train step: pose hybrid CNN-SNN (DHP19)",
    ]
    assert all(row.size.startswith("T=3 B=2 32x32") for row in results.rows)
    assert all("equal to 1e-05" in row.agree for row in results.rows)
