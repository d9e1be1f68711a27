"""Scans at compile time and in the runtime: points, lineage, gathering, the generated module's
size at any number of points, the serialized flow, and the concurrency bound of ScanSlots."""

from __future__ import annotations

import importlib.util
import re
import sys
import threading
import time
from pathlib import Path

import pytest

from compiler.compile import compile_plan, compile_spec
from compiler.config import find_project
from compiler.output import load_lock
from compiler.targets.prefect1.scans import _point_label
from compiler.runtime.scans import MAX_SCAN_POINTS, ScanError, expand_points, point_name
from tests.helpers import REPO

SCAN_SPEC = (REPO / "specs" / "impact_scan.yaml").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def lock():  # noqa: ANN201 - compiler.lock.Lock
    return load_lock(find_project(REPO))


def scan_spec(quad_k: list[float], drift_length: list[float]) -> str:
    """impact_scan with other scan lists (same steps, same mappings)."""
    text = SCAN_SPEC.replace("quad_k: [0.5, 1.0, 2.0]", f"quad_k: {quad_k}")
    return text.replace("drift_length: [1.0, 2.0]", f"drift_length: {drift_length}")


def test_plan_knows_the_scan_its_for_each_step_and_the_gathering_step(lock) -> None:  # noqa: ANN001
    plan = compile_plan(SCAN_SPEC, "specs/impact_scan.yaml", lock)
    impact, analysis, summary = plan.step("impact"), plan.step("analysis"), plan.step("summary")
    assert impact.scan is not None and impact.scan.mode == "grid" and impact.scan.max_concurrency == 2
    assert [(a.name, a.values) for a in impact.scan.axes] == [
        ("impact-quad_k", (0.5, 1.0, 2.0)),
        ("impact-drift_length", (1.0, 2.0)),
    ]
    assert impact.scan.points() == [  # grid: the first parameter slowest
        {"quad_k": q, "drift_length": d} for q in (0.5, 1.0, 2.0) for d in (1.0, 2.0)
    ]
    assert (impact.lineage, analysis.lineage, summary.lineage) == ("impact", "impact", None)
    assert analysis.for_each == "impact" and analysis.depends_on == ()
    assert [plan.point_count(s) for s in plan.steps] == [1, 6, 6, 1]
    (emittance,) = analysis.inputs
    assert emittance.per_point and not emittance.gathered
    assert all(m.gathered and not m.per_point for m in summary.inputs)
    scanned = {p.name: p for p in plan.parameters if p.scanned}
    assert scanned["impact-quad_k"].default == [0.5, 1.0, 2.0]
    assert "quad_k" not in dict(impact.arguments)  # the point supplies it


def test_zip_pairs_the_lists_item_by_item(lock) -> None:  # noqa: ANN001
    text = SCAN_SPEC.replace("mode: grid", "mode: zip").replace("quad_k: [0.5, 1.0, 2.0]", "quad_k: [0.5, 1.0]")
    scan = compile_plan(text, "specs/impact_scan.yaml", lock).step("impact").scan
    assert scan is not None and scan.point_count == 2
    assert scan.points() == [{"quad_k": 0.5, "drift_length": 1.0}, {"quad_k": 1.0, "drift_length": 2.0}]


def test_int_values_for_a_float_parameter_are_accepted(lock) -> None:  # noqa: ANN001
    plan = compile_plan(scan_spec([1, 2], [1, 3]), "specs/impact_scan.yaml", lock)
    assert plan.step("impact").scan.point_count == 4  # type: ignore[union-attr]


def _without_scan_literals(flow_py: str) -> str:
    """flow.py minus its header, the scan lists and the point count in a comment."""
    body = flow_py.split("\n", 2)[2]
    body = re.sub(r"IMAGE = .*", "IMAGE = ...", body)
    body = re.sub(r'Parameter\(\s*"impact-(quad_k|drift_length)",\s*default=\[[^\]]*\],?\s*\)', "Parameter(...)", body)
    return re.sub(r"\d+ by default", "N by default", body)


def test_generated_module_is_the_same_for_6_and_1000_points_but_the_lists(lock) -> None:  # noqa: ANN001
    small = compile_spec(scan_spec([0.5, 1.0, 2.0], [1.0, 2.0]), "specs/impact_scan.yaml", lock)
    quad_k = [round(0.01 * i, 2) for i in range(1, 501)]
    large = compile_spec(scan_spec(quad_k, [1.0, 2.0]), "specs/impact_scan.yaml", lock)
    small_py, large_py = small["impact_scan/flow.py"], large["impact_scan/flow.py"]
    assert "1000 by default" in large_py and "6 by default" in small_py
    assert _without_scan_literals(small_py) == _without_scan_literals(large_py)
    assert large_py.count("run_child_flow") == small_py.count("run_child_flow") == 5  # import + 4 steps


def _load_flow(path: Path, name: str):  # noqa: ANN202 - prefect.Flow
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.flow


def test_serialized_flow_has_one_mapped_run_child_flow_per_per_point_step(tmp_path: Path) -> None:
    flow = _load_flow(REPO / "generated" / "impact_scan" / "flow.py", "impact_scan_flow")
    serialized = flow.serialize()
    tasks = {task["slug"]: task for task in serialized["tasks"]}
    runs = {task["name"]: task["slug"] for task in serialized["tasks"] if task["name"].startswith("run ")}
    runs = {name: slug for name, slug in runs.items() if not name.startswith("run names")}
    assert sorted(runs) == ["run analysis", "run distgen", "run impact", "run summary"]
    mapped_into = {
        slug: {edge["key"] for edge in serialized["edges"] if edge["downstream_task"]["slug"] == slug and edge["mapped"]}
        for slug in runs.values()
    }
    assert mapped_into[runs["run impact"]] == {"parameters", "run_name", "point"}
    assert mapped_into[runs["run analysis"]] == {"parameters", "run_name", "point", None}  # + the point's upstream run
    assert mapped_into[runs["run distgen"]] == mapped_into[runs["run summary"]] == set()
    assert len(tasks) == len(serialized["tasks"])


def test_a_scanned_steps_first_child_waits_for_no_task_run_per_point() -> None:
    """Everything upstream of `run impact` runs once (scan_parameters, not a mapped task), so
    Prefect starts the first point's child without first running a task for every point."""
    flow = _load_flow(REPO / "generated" / "impact_scan" / "flow.py", "impact_scan_flow_upstream")
    (run_impact,) = [t for t in flow.tasks if t.name == "run impact"]
    upstream, pending = set(), [run_impact]
    while pending:
        for edge in flow.edges_to(pending.pop()):
            if edge.upstream_task not in upstream:
                upstream.add(edge.upstream_task)
                pending.append(edge.upstream_task)
    mapped = [t.name for t in upstream if any(e.mapped for e in flow.edges_to(t))]
    assert mapped == [] and "parameters of impact" in {t.name for t in upstream}


def test_the_runs_parameters_reach_every_task_run_as_they_are() -> None:
    """LocalFlowRunner: a scan list (a composite parameter) is not deep-copied into every task
    run's context (Prefect's TaskRunner copies its context, lists included), which made a scan's
    start quadratic in its points; Parameter tasks still read their values."""
    from prefect import Flow, Parameter, task
    import prefect

    from compiler.local.engine import LocalFlowRunner
    from compiler.runtime import LocalThreadExecutor

    values = [0.001 * i for i in range(1000)]

    @task
    def same_list(index: int) -> bool:
        return prefect.context.parameters["x"] is values

    with Flow("context", executor=LocalThreadExecutor()) as flow:
        x = Parameter("x", default=[0.0])
        shared = same_list.map(list(range(20)))
        length = task(lambda v: len(v), name="length")(x)
    state = flow.run(parameters={"x": values}, runner_cls=LocalFlowRunner)
    assert state.is_successful()
    assert state.result[shared].result == [True] * 20
    assert state.result[length].result == 1000


def test_runtime_points_grid_first_parameter_slowest_and_zip() -> None:
    axes = {"quad_k": [0.1, 0.2, 0.3], "drift_length": [1.0, 2.0]}
    assert expand_points("impact", "grid", axes) == [
        {"quad_k": q, "drift_length": d} for q in (0.1, 0.2, 0.3) for d in (1.0, 2.0)
    ]
    assert expand_points("impact", "zip", {"a": [1, 2], "b": ["x", "y"]}) == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    with pytest.raises(ScanError, match="zip needs lists of one length"):
        expand_points("impact", "zip", {"a": [1, 2], "b": [1]})
    with pytest.raises(ScanError, match="impact-a: the list of values is empty"):
        expand_points("impact", "grid", {"a": []})
    with pytest.raises(ScanError, match=f"at most {MAX_SCAN_POINTS}"):
        expand_points("impact", "grid", {"a": list(range(101)), "b": list(range(100))})
    with pytest.raises(ScanError, match="takes a list"):
        expand_points("impact", "grid", {"a": 0.5})


def test_run_names_in_the_readme_are_the_runtime_names() -> None:
    for point in ({"quad_k": 0.1, "drift_length": 1.0}, {"name": "a b", "n": 3, "flag": True}):
        assert point_name("impact", point) == _point_label("impact", point)
    assert point_name("impact", {"quad_k": 0.1, "drift_length": 1.0}) == "impact[quad_k=0.1, drift_length=1.0]"


def test_scan_slots_bound_live_points_without_deadlock_on_few_threads() -> None:
    """100 points, two slots, four executor threads: every point runs, in point order, never more
    than two alive."""
    from prefect import Flow, task

    from compiler.runtime import LocalThreadExecutor, ScanSlots

    alive, peak, order, lock = [0], [0], [], threading.Lock()

    @task
    def start(point: int) -> int:
        with lock:
            alive[0] += 1
            order.append(point)
            peak[0] = max(peak[0], alive[0])
        return point

    @task
    def finish(point: int) -> int:
        time.sleep(0.001)
        with lock:
            alive[0] -= 1
        return point * 2

    slots = ScanSlots(2)
    with Flow("bounded", executor=LocalThreadExecutor(max_workers=4)) as flow:
        started = start.map(list(range(100)), task_args={"state_handlers": [slots.acquire]})
        finish.map(started, task_args={"state_handlers": [slots.release]})
    done = threading.Event()
    result: list = []

    def run() -> None:
        result.append(flow.run())
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(120), "ScanSlots deadlocked the executor"
    assert result[0].is_successful()
    assert peak[0] == 2 and alive[0] == 0
    assert order == list(range(100))


def test_scan_slots_bound_points_whose_one_task_holds_its_slot_until_it_ends() -> None:
    """As a generated flow uses them: both handlers on one mapped task (run_child_flow, which
    lives as long as its child runs), two slots, 60 points: never more than two alive."""
    from prefect import Flow, task

    from compiler.runtime import LocalThreadExecutor, ScanSlots

    alive, peak, lock = [0], [0], threading.Lock()

    @task
    def child_runs(point: int) -> int:
        with lock:
            alive[0] += 1
            peak[0] = max(peak[0], alive[0])
        time.sleep(0.002)
        with lock:
            alive[0] -= 1
        if point == 7:
            raise ValueError("a failed point gives its slot back too")
        return point

    slots = ScanSlots(2)
    with Flow("bounded_once", executor=LocalThreadExecutor(max_workers=4)) as flow:
        child_runs.map(list(range(60)), task_args={"state_handlers": [slots.acquire, slots.release]})
    done = threading.Event()
    result: list = []

    def run() -> None:
        result.append(flow.run())
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(120), "ScanSlots deadlocked the executor"
    assert result[0].is_failed()  # point 7
    assert peak[0] == 2 and alive[0] == 0
