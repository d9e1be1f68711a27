"""Run keys: a digest of what determines a child run's result, stable across processes, and
changing exactly where an input changed (compiler/keys.py, compiler.plan.step_keys)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.compile import compile_plan
from compiler.keys import canonical, child_identity, idempotency_key, run_key
from compiler.plan import Plan, step_keys
from tests.helpers import REPO
from tests.test_properties import LOCK, SPEC_PATH, dump, random_specs

# Values whose hash order differs between processes (sets, dicts built in another order).
AWKWARD = {
    "set": {"b", "a", "c", "d", "e"},
    "nested": {"z": [1, 2.5, None, True], "a": {"y": (1, 2), "x": frozenset({3, 1, 2})}},
    "non_string_keys": {3: "c", 1: "a", 2: "b"},
    "floats": [float("nan"), float("inf"), -0.0, 1e-300],
    "bytes": b"\x00\xff",
    "text": "zeta ünïcode",
}
KEY_SCRIPT = """
import json, sys
from compiler.keys import child_identity, run_key
from tests.test_keys import AWKWARD
print(run_key(child_identity("lume", "impact", "sha256:abc"), AWKWARD, {"quad_k": 0.1}))
"""


def test_equal_inputs_give_equal_keys_in_other_processes_hash_seeds_and_directories(tmp_path: Path) -> None:
    here = run_key(child_identity("lume", "impact", "sha256:abc"), AWKWARD, {"quad_k": 0.1})
    seen = set()
    for seed, cwd in (("0", tmp_path), ("1", REPO), ("4242", Path("/"))):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        result = subprocess.run(
            [sys.executable, "-c", KEY_SCRIPT], capture_output=True, text=True, cwd=cwd, env=env, check=True
        )
        seen.add(result.stdout.strip())
    assert seen == {here}
    assert here.startswith("sha256:") and len(here) == len("sha256:") + 64


def test_keys_tell_apart_values_that_python_compares_equal_or_json_would_merge() -> None:
    identity = child_identity("lume", "scale", None)
    keys = {run_key(identity, {"x": value}) for value in (1, 1.0, True, "1", [1], (1,), None, {"1": 1}, {1: 1})}
    assert len(keys) == 9 - 1  # a tuple is a list, as it reaches a child run as JSON
    assert run_key(identity, {"a": 1, "b": 2}) == run_key(identity, {"b": 2, "a": 1})
    assert run_key(identity, {"x": {1, 2, 3}}) == run_key(identity, {"x": {3, 2, 1}})
    assert run_key(identity, {"x": [1, 2]}) != run_key(identity, {"x": [2, 1]})
    assert run_key(identity, {}, {"k": 0.1}) != run_key(identity, {}, {"k": 0.2}) != run_key(identity, {})
    assert run_key(child_identity("lume", "scale", "v1"), {}) != run_key(child_identity("lume", "scale", "v2"), {})
    assert run_key(child_identity("a", "scale", None), {}) != run_key(child_identity("b", "scale", None), {})
    assert canonical(float("nan")) == {"$float": "nan"}


def test_idempotency_keys_name_the_composite_run_the_step_and_the_attempt() -> None:
    key = run_key(child_identity("lume", "scale", None), {"x": 1})
    first, retry = idempotency_key("run-1", "left", key, 0), idempotency_key("run-1", "left", key, 1)
    assert first == f"flowc/run-1/left/{key.removeprefix('sha256:')}/0"
    assert retry != first and retry.endswith("/1")
    assert idempotency_key("run-2", "left", key, 0) != first
    assert idempotency_key("run-1", "right", key, 0) != first


# Keys over random compositions -----------------------------------------------------------------


def _plan(spec: dict[str, Any]) -> Plan:
    return compile_plan(dump(spec), SPEC_PATH, LOCK)


def _data_descendants(plan: Plan, roots: set[str]) -> set[str]:
    """The steps that receive a value, directly or not, from one of `roots` (mappings only)."""
    found = set(roots)
    for step in plan.steps:  # plan order is topological
        if any(m.parent in found for m in step.inputs):
            found.add(step.alias)
    return found


def _keys(plan: Plan, composite: dict[str, Any], versions: dict[str, str], outputs: dict[str, str]) -> dict[str, str]:
    """Keys when each child's results are a function of its own key (a deterministic child),
    except where `outputs` says a step produced something else this time."""

    def mapped_value(step: Any, mapped: Any, keys: dict[str, str]) -> Any:
        produced = outputs.get(mapped.parent, keys[mapped.parent])
        return {"from": produced, "slug": mapped.task_slug, "index": list(mapped.attribute_index)}

    return step_keys(plan, composite, lambda step: versions.get(f"{step.project_name}/{step.flow_name}", "v1"), mapped_value)


KEYS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@KEYS
@given(random_specs(max_steps=12), st.data())
def test_a_changed_input_changes_exactly_the_keys_that_depend_on_it(case: Any, data: st.DataObject) -> None:
    spec, _ = case
    plan = _plan(spec)
    composite = {p.name: (0 if p.required else p.default) for p in plan.parameters}
    before = _keys(plan, composite, {}, {})

    kind = data.draw(st.sampled_from(["parameter", "version", "upstream value"]))
    if kind == "parameter" and plan.parameters:
        parameter = data.draw(st.sampled_from(plan.parameters))
        changed = dict(composite, **{parameter.name: ["changed", composite[parameter.name]]})
        after = _keys(plan, changed, {}, {})
        expected = _data_descendants(plan, {parameter.step})
    elif kind == "version":
        step = data.draw(st.sampled_from(plan.steps))
        flow = f"{step.project_name}/{step.flow_name}"
        after = _keys(plan, composite, {flow: "v2"}, {})
        users = {s.alias for s in plan.steps if f"{s.project_name}/{s.flow_name}" == flow}
        expected = _data_descendants(plan, users)
    else:
        step = data.draw(st.sampled_from(plan.steps))
        after = _keys(plan, composite, {}, {step.alias: "another result"})
        expected = _data_descendants(plan, {step.alias}) - {step.alias}
    assert {alias for alias in before if before[alias] != after[alias]} == expected


@KEYS
@given(random_specs(max_steps=8))
def test_keys_do_not_depend_on_the_yaml_order_of_the_steps(case: Any) -> None:
    spec, _ = case
    reversed_spec = dict(spec, composing_flows=list(reversed(spec["composing_flows"])))
    plans = [_plan(spec), _plan(reversed_spec)]
    composites = [{p.name: (0 if p.required else p.default) for p in plan.parameters} for plan in plans]
    first, second = (_keys(plan, c, {}, {}) for plan, c in zip(plans, composites))
    assert first == second


def test_the_example_pipeline_keys_are_what_its_generated_flow_computes() -> None:
    """step_keys and run_child_flow agree: the JSON summary of a local run carries the same keys."""
    plan = compile_plan((REPO / "specs" / "fan_in.yaml").read_text(), "specs/fan_in.yaml", _repo_lock())
    composite = {p.name: p.default for p in plan.parameters}
    results = {"start": 3.0, "left": 9.0, "right": 15.0}
    keys = step_keys(plan, composite, lambda step: "v", lambda step, m, keys: results[m.parent])
    assert keys["combine"] == run_key(child_identity("lume", "combine", "v"), {"a": 9.0, "b": 15.0})
    assert keys["left"] == run_key(child_identity("lume", "scale", "v"), {"factor": 3.0, "value": 3.0})
    json.dumps(keys)


def _repo_lock() -> Any:
    from compiler.lock import read_lock_file

    return read_lock_file(REPO / "specs" / "flows.lock.yaml", "specs/flows.lock.yaml")
