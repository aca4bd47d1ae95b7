"""The speed and memory goals of issues 7 and 20, checked against the measured rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.results import Results, Row


@dataclass(frozen=True)
class Goal:
    """A ratio goal checked against the measured rows whose operation starts with ``prefix`` in
    ``group``: met when every such row reaches ``min_ratio`` and (with ``needs_agreement``)
    agrees. ``floor``: the operation prefix of a row in ``group`` timing a cost that every
    implementation pays (the peer too); the line then states the best ratio any implementation
    could reach, the worst row's peer time over that floor."""

    text: str
    group: str
    prefix: str
    min_ratio: float
    needs_agreement: bool = True
    issue: int = 7
    floor: str | None = None


@dataclass(frozen=True)
class GrowthGoal:
    """A growth goal: for every operation of ``group`` measured in ``unit`` (``"s"`` times, ``"B"``
    peak bytes), the least-squares slope of log(value) against log(size) is at most
    ``max_exponent``. The size is the leading number of the size column ("10,000 events",
    "16 samples, 50 bins", "100 bins, batch 8")."""

    text: str
    group: str
    unit: str
    max_exponent: float
    issue: int = 20


GOALS = (
    Goal("to_frame >= 10x tonic ToFrame (every mode), identical outputs", "represent", "to_frame", 10.0),
    Goal("voxel_grid >= 10x tonic ToVoxelGrid, identical outputs", "represent", "voxel_grid", 10.0),
    Goal("denoise >= 100x tonic Denoise, identical outputs", "represent", "denoise", 100.0),
    Goal("LIF classifier train step >= 3x norse on CPU, equal loss to 1e-5", "lif", "LIF classifier", 3.0),
    Goal(
        "Cached epochs never wait on data: loader >= 5x the training step's consumption (every method)",
        "methods",
        "cached epoch",
        5.0,
        needs_agreement=False,
    ),
    Goal(
        "DHP19 bytes per training sample >= 100x below the reference's layout",
        "dhp19_mem",
        "bytes per sample",
        100.0,
        needs_agreement=False,
    ),
    Goal("compiled to_frame >= 10x tonic ToFrame in every mode, identical", "represent", "to_frame", 10.0, issue=20),
    Goal(
        "compiled to_frame >= 10x tonic ToFrame when every call needs fresh output memory (the caller keeps "
        "its outputs, so none can be reused; the main to_frame rows drop each output, as a loader does)",
        "represent",
        "fresh output memory: to_frame",
        10.0,
        issue=20,
        floor="page faults",
    ),
    Goal("compiled voxel_grid >= 10x tonic ToVoxelGrid, identical", "represent", "voxel_grid", 10.0, issue=20),
    Goal("compiled denoise >= 100x tonic Denoise, identical", "represent", "denoise", 100.0, issue=20),
    Goal(
        "compiled refractory_period >= 5x tonic RefractoryPeriod, identical",
        "represent",
        "refractory_period",
        5.0,
        issue=20,
    ),
    Goal("compiled downsample >= 5x tonic Downsample, identical", "represent", "downsample", 5.0, issue=20),
    *(
        Goal(
            f"{method} training step >= 1.5x its reference on CPU, same losses to 1e-5",
            "reference",
            f"train step: {method}",
            1.5,
            issue=20,
        )
        for method in ("HG-VAE", "Event2Vec", "pose SNN", "pose hybrid CNN-SNN", "TVAE")
    ),
    GrowthGoal(
        "every method's training step linear in batch size and in T: time power <= 1.1", "step_growth", "s", 1.1
    ),
    GrowthGoal(
        "training steps: no super-linear peak memory in batch size or T (power <= 1.1)", "step_growth", "B", 1.1
    ),
    GrowthGoal("every kernel linear in events: time exponent <= 1.1 (10k-10M events)", "growth", "s", 1.1),
    GrowthGoal("no super-linear memory: peak memory exponent <= 1.1 (10k-10M events)", "growth", "B", 1.1),
)


def _agrees(row: Row) -> bool:
    return row.agree == "identical" or (row.agree != "-" and not row.agree.startswith(("NO", "DIFFERENT")))


def _ratio_line(goal: Goal, results: Results) -> str:
    # rows with a ratio: a floor row sharing the prefix (voxel_grid's scattered adds alone) compares nothing
    rows = [
        r for r in results.rows if r.group == goal.group and r.operation.startswith(goal.prefix) and r.ratio is not None
    ]
    if not rows:
        return f"- {goal.text}: not measured in this run"
    worst_row = min(rows, key=lambda r: r.ratio)
    worst = worst_row.ratio
    if not goal.needs_agreement:
        verdict = "met" if worst >= goal.min_ratio else "NOT met"
        return f"- {goal.text}: worst measured ratio {worst:.1f}x -> **{verdict}**"
    agree = all(_agrees(r) for r in rows)
    met = worst >= goal.min_ratio and agree
    return (
        f"- {goal.text}: worst measured ratio {worst:.1f}x, {'outputs agree' if agree else 'outputs DIFFER'} "
        f"-> **{'met' if met else 'NOT met'}**{_floor_bound(goal, worst_row, results)}"
    )


def _floor_bound(goal: Goal, worst_row: Row, results: Results) -> str:
    """``"; bound: ..."``: the best ratio an implementation that cost nothing beyond ``goal.floor``
    could reach (empty without a floor, or when the run has no such row)."""
    if goal.floor is None:
        return ""
    floors = [r for r in results.rows if r.group == goal.group and r.operation.startswith(goal.floor)]
    if not floors:
        return ""
    floor = floors[0]
    return (
        f"; bound: {goal.floor} alone take {floor.ours_s * 1e3:.2f} ms, so even an implementation costing nothing "
        f"more reaches {worst_row.peer_s / floor.ours_s:.1f}x"
    )


def _events_of(row: Row) -> int:
    return int(row.size.split()[0].replace(",", ""))


def _growth_line(goal: GrowthGoal, results: Results) -> str:
    series: dict[str, list[Row]] = {}
    for row in results.rows:
        if row.group == goal.group and row.unit == goal.unit:
            series.setdefault(row.operation, []).append(row)
    exponents = {
        operation: float(np.polyfit(np.log([_events_of(r) for r in rows]), np.log([r.ours_s for r in rows]), 1)[0])
        for operation, rows in series.items()
        if len({_events_of(r) for r in rows}) > 1
    }
    if not exponents:
        return f"- {goal.text}: not measured in this run"
    worst = max(exponents, key=exponents.get)
    verdict = "met" if exponents[worst] <= goal.max_exponent else "NOT met"
    return f"- {goal.text}: largest exponent {exponents[worst]:.2f} ({worst}) -> **{verdict}**"


def goal_lines(results: Results, issue: int = 7) -> list[str]:
    """One line per goal of ``issue``: the measured worst ratio (or exponent) and whether the goal
    is met in this run."""
    return [
        _ratio_line(goal, results) if isinstance(goal, Goal) else _growth_line(goal, results)
        for goal in GOALS
        if goal.issue == issue
    ]
