"""The speed and memory goals of issue 7, checked against the measured rows."""

from __future__ import annotations

from dataclasses import dataclass

from bench.results import Results, Row


@dataclass(frozen=True)
class Goal:
    """A ratio goal from issue 7 checked against the measured rows whose operation starts with
    ``prefix`` in ``group``: met when every such row reaches ``min_ratio`` and (with
    ``needs_agreement``) agrees."""

    text: str
    group: str
    prefix: str
    min_ratio: float
    needs_agreement: bool = True


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
)


def _agrees(row: Row) -> bool:
    return row.agree == "identical" or (row.agree != "-" and not row.agree.startswith(("NO", "DIFFERENT")))


def goal_lines(results: Results) -> list[str]:
    """One line per goal: the measured worst ratio and whether the goal is met in this run."""
    lines = []
    for goal in GOALS:
        rows = [r for r in results.rows if r.group == goal.group and r.operation.startswith(goal.prefix)]
        if not rows:
            lines.append(f"- {goal.text}: not measured in this run")
            continue
        worst = min(r.ratio for r in rows if r.ratio is not None)
        if not goal.needs_agreement:
            met = worst >= goal.min_ratio
            verdict = "met" if met else "NOT met"
            lines.append(f"- {goal.text}: worst measured ratio {worst:.1f}x -> **{verdict}**")
            continue
        met = worst >= goal.min_ratio and all(_agrees(r) for r in rows)
        agree = "outputs agree" if all(_agrees(r) for r in rows) else "outputs DIFFER"
        lines.append(f"- {goal.text}: worst measured ratio {worst:.1f}x, {agree} -> **{'met' if met else 'NOT met'}**")
    return lines
