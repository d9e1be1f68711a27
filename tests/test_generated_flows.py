"""Every generated flow.py is an ordinary Prefect 1 flow whose graph is the spec's composition."""

from __future__ import annotations

import itertools
import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from compiler.runtime import run_child_flow
from tests.helpers import PREFECT1_SPECS, REPO

LOCK = yaml.safe_load((REPO / "specs" / "flows.lock.yaml").read_text())["flows"]


def load_spec(spec: Path) -> dict:
    return yaml.safe_load(spec.read_text())


def step_name(flow: dict) -> str:
    return flow.get("alias") or flow["name"]


def spec_dag(spec: dict) -> dict[str, set[str]]:
    """step -> the steps it takes values from or depends on, by alias (or unique name)."""
    by_name = {step_name(f): f for f in spec["composing_flows"]}
    parents: dict[str, set[str]] = {}
    for flow in spec["composing_flows"]:
        refs = {m["parent_flow_name"] for m in (flow.get("mapped_parameters") or {}).values()}
        refs |= set(flow.get("depends_on") or [])
        parents[step_name(flow)] = {
            r if r in by_name else next(step_name(f) for f in spec["composing_flows"] if f["name"] == r)
            for r in refs
        }
    return parents


def expected_parameters(spec: dict) -> set[str]:
    names = set()
    for flow in spec["composing_flows"]:
        mapped = set(flow.get("mapped_parameters") or {})
        for parameter in LOCK[f"{flow['project_name']}/{flow['name']}"]["parameters"]:
            if parameter["name"] not in mapped:
                names.add(f"{step_name(flow)}-{parameter['name']}")
    return names


def reachable(flow, start) -> set:
    seen, frontier = set(), [start]
    downstream: dict = {}
    for edge in flow.edges:
        downstream.setdefault(edge.upstream_task, []).append(edge.downstream_task)
    while frontier:
        task = frontier.pop()
        for nxt in downstream.get(task, ()):
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    return seen


def ancestors(dag: dict[str, set[str]], step: str) -> set[str]:
    found, frontier = set(), list(dag[step])
    while frontier:
        parent = frontier.pop()
        if parent not in found:
            found.add(parent)
            frontier.extend(dag[parent])
    return found


@pytest.fixture(scope="module", params=[p.stem for p in PREFECT1_SPECS])
def compiled(request):
    spec_path = REPO / "specs" / f"{request.param}.yaml"
    spec = load_spec(spec_path)
    namespace = runpy.run_path(str(REPO / "generated" / spec["name"] / "flow.py"), run_name="<flow>")
    return spec, namespace["flow"]


def tasks_running(flow, prefect_task) -> list:
    """The flow's copies of one of Prefect's orchestration tasks (copies share its run function)."""
    return [t for t in flow.tasks if getattr(t, "run", None) is prefect_task.run]


def runs_and_waits(flow) -> tuple[dict, dict]:
    """The run_child_flow tasks by step alias (named 'run <alias>'), twice: each one both starts
    its child and ends when the child run ends."""
    runs = {t.name.removeprefix("run "): t for t in tasks_running(flow, run_child_flow)}
    return runs, runs


def test_flow_is_named_for_the_spec_and_has_the_composite_parameters(compiled) -> None:
    spec, flow = compiled
    assert flow.name == spec["name"]
    assert {p.name for p in flow.parameters()} == expected_parameters(spec)


def test_one_flow_run_per_composing_flow(compiled) -> None:
    spec, flow = compiled
    creates = tasks_running(flow, run_child_flow)
    assert len(creates) == len(spec["composing_flows"])
    runs, _ = runs_and_waits(flow)
    assert set(runs) == {step_name(f) for f in spec["composing_flows"]}
    by_step = {step_name(f): f for f in spec["composing_flows"]}
    for alias, task in runs.items():
        constants = flow.constants[task]
        assert constants["flow_name"] == by_step[alias]["name"]
        assert constants["project_name"] == by_step[alias]["project_name"]
        assert constants["step"] == alias
        assert constants.get("retries", 0) == by_step[alias].get("retries", 0)
        assert constants.get("labels") == by_step[alias].get("labels")


def test_each_child_waits_for_every_parent_it_maps_from(compiled) -> None:
    spec, flow = compiled
    runs, waits = runs_and_waits(flow)
    for child, parents in spec_dag(spec).items():
        for parent in parents:
            assert runs[child] in reachable(flow, waits[parent]), f"{child} does not wait for {parent}"


def test_independent_children_have_no_path_between_them(compiled) -> None:
    spec, flow = compiled
    dag = spec_dag(spec)
    runs, _ = runs_and_waits(flow)
    for a, b in itertools.combinations(sorted(dag), 2):
        if a in ancestors(dag, b) or b in ancestors(dag, a):
            continue
        assert runs[b] not in reachable(flow, runs[a]), f"{a} and {b} are independent"
        assert runs[a] not in reachable(flow, runs[b]), f"{a} and {b} are independent"


def test_mapped_values_come_from_the_parent_runs_task_result(compiled) -> None:
    spec, flow = compiled
    runs, _ = runs_and_waits(flow)
    results = [t for t in flow.tasks if t.name == "get_task_run_result"]
    mappings = [
        (step_name(f), name, m) for f in spec["composing_flows"] for name, m in (f.get("mapped_parameters") or {}).items()
    ]
    assert len(results) == len(mappings)
    slugs = sorted(flow.constants[t]["task_slug"] for t in results)
    expected = []
    by_step = {step_name(f): f for f in spec["composing_flows"]}
    for _, _, mapping in mappings:
        parent = by_step.get(mapping["parent_flow_name"]) or next(
            f for f in spec["composing_flows"] if f["name"] == mapping["parent_flow_name"]
        )
        tasks = LOCK[f"{parent['project_name']}/{parent['name']}"]["tasks"]
        expected.append(mapping.get("parent_task_slug") or list(tasks[mapping["parent_task_name"]]["slugs"])[0])
    assert slugs == sorted(expected)
    db_loaders = [t for t in flow.tasks if t.name == "load_db_result"]
    assert len(db_loaders) == sum(1 for *_, m in mappings if m.get("map_type") == "db")


@pytest.mark.parametrize("spec_path", PREFECT1_SPECS, ids=lambda p: p.stem)
def test_prefect_cli_builds_the_generated_flow(spec_path: Path, tmp_path: Path) -> None:
    spec = load_spec(spec_path)
    out = tmp_path / "flows.json"
    result = subprocess.run(
        [sys.executable, "-m", "prefect", "build", "-p", str(REPO / "generated" / spec["name"] / "flow.py"), "-o", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    built = json.loads(out.read_text())
    (entry,) = built["flows"]
    assert entry["name"] == spec["name"]
    assert {p["name"] for p in entry["parameters"]} == expected_parameters(spec)
    assert entry["storage"]["path"] == "/opt/flowc/flow.py"
    assert entry["run_config"]["image"].startswith(spec.get("image", spec["name"]) + ":")
