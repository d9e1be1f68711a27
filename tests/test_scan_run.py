"""`flowc run` of scans end to end: every point ran with its own values, for_each steps took the
matching point's value, and the gathering step received one item per point in point order; each
number is recomputed here from the distribution file distgen wrote."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from compiler.runtime import fetch_result_value
from tests.helpers import flowc
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


def points_of(summary: dict[str, Any], alias: str) -> list[dict[str, Any]]:
    """A per-point step's entries in --json, which must come in point order."""
    entries = [c for c in summary["children"] if c["alias"] == alias]
    assert [c["point_index"] for c in entries] == list(range(len(entries)))
    return entries


def test_impact_scan_runs_every_point_and_gathers_them_in_order(project: Path) -> None:
    summary = run_json(project, "impact_scan")
    check_impact_scan(project, summary, [0.5, 1.0, 2.0], [1.0, 2.0])
    assert summary["parameters"]["impact-quad_k"] == [0.5, 1.0, 2.0]
    check_points_are_told_apart_and_paired(project, summary)


def check_points_are_told_apart_and_paired(project: Path, summary: dict[str, Any]) -> None:
    """One --json entry per point, with its values, index and run name; analysis point i took
    impact point i's own emittance (read back from the store here, bit for bit)."""
    store = f"sqlite:///{project / '.flowc' / 'results.db'}"
    impact, analysis = points_of(summary, "impact"), points_of(summary, "analysis")
    grid = [{"quad_k": k, "drift_length": d} for k in (0.5, 1.0, 2.0) for d in (1.0, 2.0)]
    assert [c["point"] for c in impact] == [c["point"] for c in analysis] == grid
    names = [f"impact[quad_k={p['quad_k']}, drift_length={p['drift_length']}]" for p in grid]
    assert [c["run_name"] for c in impact] == [c["label"] for c in impact] == names
    assert [c["label"] for c in analysis] == [name.replace("impact[", "analysis[") for name in names]
    assert len({c["log"] for c in impact + analysis}) == 12  # a log file per point
    assert all("drift_length=" in c["log"] for c in impact + analysis)
    emittances = []
    for point, run, judged in zip(grid, impact, analysis):
        assert run["state"] == judged["state"] == "Success"
        assert (run["parameters"]["quad_k"], run["parameters"]["drift_length"]) == (point["quad_k"], point["drift_length"])
        stored = run["results"]["save_db_result-1"]
        assert fetch_result_value(stored, ["inputs", "quad_k"], store) == point["quad_k"]
        emittance = fetch_result_value(stored, ["outputs", "end_norm_emit_x"], store)
        assert judged["mapped"] == {"emittance": emittance}
        emittances.append(emittance)
    assert len(set(emittances)) > 1  # the points differ in their last bits, so the pairing is checked
    assert len({c["run_id"] for c in impact + analysis}) == 12


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


# Per point: concurrency, a failing point, the human output (tests/scan_data/clock.py) -------------

SCAN_DATA = Path(__file__).parent / "scan_data"


@pytest.fixture
def clock_project(project: Path) -> Path:
    """The project with the clock child and its scan spec (tests/scan_data), locked and generated."""
    shutil.copy(SCAN_DATA / "clock.py", project / "examples" / "flows" / "clock.py")
    shutil.copy(SCAN_DATA / "clock_scan.yaml", project / "specs" / "clock_scan.yaml")
    for command in (["lock"], ["generate", "specs/clock_scan.yaml"]):
        done = flowc(*command, cwd=project)
        assert done.returncode == 0, done.stdout + done.stderr
    return project


def test_max_concurrency_bounds_live_children_by_their_own_clocks(clock_project: Path) -> None:
    summary = run_json(clock_project, "clock_scan")
    ticks = [c["results"]["tick-1"] for c in points_of(summary, "clock")]
    assert [t["label"] for t in ticks] == [0, 1, 2, 3, 4, 5]
    assert len({t["pid"] for t in ticks}) == 6  # each point in a process of its own
    events = sorted([(t["start"], 1) for t in ticks] + [(t["end"], -1) for t in ticks])
    alive = peak = 0
    for _, change in events:
        alive += change
        peak = max(peak, alive)
    assert peak == 2
    after = points_of(summary, "after")
    assert [c["mapped"]["label"] for c in after] == [0, 10, 20, 30, 40, 50]
    assert [c["results"]["scaled-1"] for c in after] == [0, 100, 200, 300, 400, 500]
    total = children(summary)["total"]
    assert total["point_index"] is None and total["label"] == "total"
    assert total["mapped"] == {"label": [0, 100, 200, 300, 400, 500]}  # gathered in point order
    assert total["results"]["scaled-1"] == 15000


def test_a_failed_point_fails_the_run_and_only_its_own_for_each_point_and_the_gathering_step(
    clock_project: Path,
) -> None:
    summary = run_json(clock_project, "clock_scan", "clock-fail_on=3", "clock-seconds=0.0", expect=1)
    assert summary["state"] == "Failed" and summary["ok"] is False
    clock, after = points_of(summary, "clock"), points_of(summary, "after")
    assert [c["state"] for c in clock] == ["Success"] * 3 + ["Failed"] + ["Success"] * 2
    assert "point 3 fails on purpose" in clock[3]["message"]
    assert [c["state"] for c in after] == ["Success"] * 3 + ["not run"] + ["Success"] * 2
    assert after[3]["reason"] == "upstream 'clock[label=3]' failed"
    assert after[3]["point"] == {"label": 3} and after[3]["label"] == "after[label=3]" and after[3]["run_id"] is None
    # the other points finished, each with its own value
    assert [c["results"]["scaled-1"] for i, c in enumerate(after) if i != 3] == [0, 100, 200, 400, 500]
    total = children(summary)["total"]
    assert total["state"] == "not run" and total["run_id"] is None
    assert total["reason"] == "upstream 'after' was not run (1 of 6 points)"


def test_a_run_parameter_changes_the_points(clock_project: Path) -> None:
    summary = run_json(clock_project, "clock_scan", "clock-label=[7, 8]", "clock-seconds=0.0")
    assert [c["point"] for c in points_of(summary, "clock")] == [{"label": 7}, {"label": 8}]
    assert [c["label"] for c in points_of(summary, "after")] == ["after[label=7]", "after[label=8]"]
    assert children(summary)["total"]["results"]["scaled-1"] == 10 * (10 * 70 + 10 * 80)  # total <- after.scaled <- clock.scaled


def test_human_output_has_a_line_per_point_and_folds_large_scans(clock_project: Path) -> None:
    labels = "[" + ", ".join(str(i) for i in range(12)) + "]"
    done = flowc(
        "run", "specs/clock_scan.yaml", "-p", f"clock-label={labels}", "-p", "clock-fail_on=4",
        "-p", "clock-seconds=0.0", cwd=clock_project, env={**os.environ, "COLUMNS": "160"},
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == ""  # progress and the summary are for people: stderr
    lines = done.stderr.splitlines()
    for index in range(12):
        assert sum(f"▶ clock[label={index}] " in line for line in lines) == 1, done.stderr
    assert sum(f"✔ clock[label=" in line for line in lines) == 11
    assert any("✘ clock[label=4] " in line and "Failed" in line for line in lines)
    assert any("○ after[label=4] " in line and "not run" in line for line in lines)
    rows = [line for line in lines if line.startswith("│")]
    assert any("clock × 12" in row and "11 Success, 1 Failed" in row for row in rows), "\n".join(rows)
    assert any("after × 12" in row and "11 Success, 1 not run" in row for row in rows), "\n".join(rows)
    assert not any("clock[label=" in row for row in rows)  # folded: no row per point
    assert "  clock[label=4]: Failed:" in done.stderr
    assert "  after[label=4]: not run: upstream 'clock[label=4]' failed" in done.stderr
    assert "clock_scan: Failed" in lines[-1] and "(22 succeeded, 1 failed, 2 not run)" in lines[-1]


@pytest.fixture
def ledger_project(clock_project: Path) -> Path:
    """The clock project plus the ledger child and its scan (tests/scan_data), locked and generated."""
    shutil.copy(SCAN_DATA / "ledger.py", clock_project / "examples" / "flows" / "ledger.py")
    shutil.copy(SCAN_DATA / "ledger_scan.yaml", clock_project / "specs" / "ledger_scan.yaml")
    for command in (["lock"], ["generate", "specs/ledger_scan.yaml"]):
        done = flowc(*command, cwd=clock_project)
        assert done.returncode == 0, done.stdout + done.stderr
    return clock_project


def test_a_point_whose_own_loader_fails_names_that_loader_and_point_downstream(ledger_project: Path) -> None:
    """Every ledger point succeeds, but the composite cannot load point 1's `kept` (its file is
    gone: raw) nor point 2's record field (db): those after points, their again points and the
    gathering step say so, with the point; points 0 and 3 finish; the composite fails."""
    spoilt = ("-p", "ledger-lose_file_on=1", "-p", "ledger-lose_field_on=2")
    done = flowc("run", "specs/ledger_scan.yaml", "--json", *spoilt, cwd=ledger_project)
    assert done.returncode == 1, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["state"] == "Failed" and summary["ok"] is False
    ledger, after, again = (points_of(summary, alias) for alias in ("ledger", "after", "again"))
    assert [c["state"] for c in ledger] == ["Success"] * 4
    assert [c["state"] for c in after] == [c["state"] for c in again] == ["Success", "not run", "not run", "Success"]
    raw = "loading 'seconds' from 'ledger[label=1]' failed (task 'get_task_run_result'): "
    assert after[1]["reason"].startswith(raw) and "kept-1.json" in after[1]["reason"], after[1]["reason"]
    db = "loading 'label' from 'ledger[label=2]' failed (task 'load_db_result'): "
    assert after[2]["reason"].startswith(db), after[2]["reason"]
    assert "has no 'outputs' -> 'value'" in after[2]["reason"]
    assert again[1]["reason"] == f"upstream 'after[label=1]' was not run: {after[1]['reason']}"
    assert again[2]["reason"] == f"upstream 'after[label=2]' was not run: {after[2]['reason']}"
    # the other points finished with their own values: label 10 * x from the store, seconds 0.01 * x
    assert [(c["mapped"]["label"], c["mapped"]["seconds"]) for c in (after[0], after[3])] == [(0, 0.0), (30, 0.03)]
    assert [c["results"]["scaled-1"] for c in (again[0], again[3])] == [0, 3000]
    total = children(summary)["total"]
    assert total["state"] == "not run" and total["run_id"] is None
    assert total["reason"].startswith(
        f"upstream 'again' was not run (2 of 4 points; first again[label=1]: {again[1]['reason']})"
    ), total["reason"]
    assert f"loading 'fail_on' from 'ledger[label=1]' failed (task 'get_task_run_result'): " in total["reason"]
    assert f"○ after[label=2]  not run   {db}" in done.stderr  # the progress line as it happens
    # the human summary names the same causes
    done = flowc("run", "specs/ledger_scan.yaml", *spoilt, cwd=ledger_project, env={**os.environ, "COLUMNS": "400"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"  after[label=2]: not run: {db}" in done.stderr
    assert f"  again[label=1]: not run: upstream 'after[label=1]' was not run: {raw}" in done.stderr
    assert done.stderr.splitlines()[-1].startswith("ledger_scan: Failed") and "(8 succeeded, 5 not run)" in done.stderr
