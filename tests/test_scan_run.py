"""`flowc run` of scans end to end: every point ran with its own values, for_each steps took the
matching point's value, and the gathering step received one item per point in point order; each
number is recomputed here from the distribution file distgen wrote."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from tests.test_run import children, copy_project, norm_emittance, run_json, saved_distribution


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project", generated=True, examples=True)


def divergence(distribution: dict[str, Any], quad_k: float, drift_length: float) -> float:
    """rms x' after a drift then a thin quad: x' - k (x + L x'), written apart from impact's."""
    kicked = [p - quad_k * (x + drift_length * p) for x, p in zip(distribution["x"], distribution["xp"])]
    mean = sum(kicked) / len(kicked)
    return math.sqrt(sum((p - mean) ** 2 for p in kicked) / len(kicked))


def check_impact_scan(project: Path, summary: dict[str, Any], quad_k: list[float], drift_length: list[float]) -> None:
    assert summary["state"] == "Success" and summary["ok"] is True, summary
    steps = children(summary)
    distribution = saved_distribution(project, steps["distgen"], n_particle=2000, seed=7)
    grid = [(k, d) for k in quad_k for d in drift_length]  # first parameter slowest
    gathered = steps["summary"]["mapped"]
    # db mapping [inputs] gathered from every impact point: each point's own values, in point order.
    assert [(p["quad_k"], p["drift_length"]) for p in gathered["points"]] == grid
    file_rep = steps["distgen"]["results"]["save_distribution-1"]
    assert all(p["distribution_file"] == file_rep for p in gathered["points"])
    expected = [divergence(distribution, k, d) for k, d in grid]
    assert gathered["divergences"] == pytest.approx(expected, rel=1e-9)
    emittance = norm_emittance(distribution)  # a drift and a thin quad conserve it
    assert [r["emittance"] for r in gathered["reports"]] == pytest.approx([emittance] * len(grid), rel=1e-9)
    best = min(range(len(grid)), key=lambda i: (expected[i], i))
    result = steps["summary"]["results"]["best_point-1"]
    assert (result["index"], result["quad_k"], result["drift_length"]) == (best, *grid[best])
    assert result["divergence"] == pytest.approx(expected[best], rel=1e-9)
    assert result["points"] == len(grid)


def test_impact_scan_runs_every_point_and_gathers_them_in_order(project: Path) -> None:
    summary = run_json(project, "impact_scan")
    check_impact_scan(project, summary, [0.5, 1.0, 2.0], [1.0, 2.0])
    assert summary["parameters"]["impact-quad_k"] == [0.5, 1.0, 2.0]


def test_a_run_parameter_changes_the_grid_without_regenerating(project: Path) -> None:
    summary = run_json(project, "impact_scan", "impact-quad_k=[0.1, 0.25]", "impact-drift_length=[3.0]")
    check_impact_scan(project, summary, [0.1, 0.25], [3.0])


def test_bad_scan_lists_on_the_command_line_are_usage_errors_before_anything_runs(project: Path) -> None:
    from tests.helpers import flowc

    for value, message in (
        ("[]", "-p impact-quad_k: the list of values is empty"),
        ("0.5", "-p impact-quad_k: expected a list"),
        ("[1, x]", "-p impact-quad_k: 'x' is a string, but the child's default is a number (0.5)"),
        ("[" + ", ".join(["0.1"] * 5001) + "]", "impact: 10002 points; a step runs at most 10000"),
    ):
        done = flowc("run", "specs/impact_scan.yaml", "-p", f"impact-quad_k={value}", cwd=project)
        assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not (project / ".flowc" / "files").exists()  # distgen never ran
