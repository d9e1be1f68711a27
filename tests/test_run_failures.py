"""`flowc run` when things go wrong, and how children overlap: specs written into a copy of the
project (never into specs/ of the repository), locked and generated with the real command line.
"""

from __future__ import annotations

import json
import os
import textwrap
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import copy_project, flowc

SLEEPY = '''\
"""sleepy: wait, then hand a value on; for tests of concurrency."""

import time

from prefect import Flow, Parameter, task
from prefect.engine.results import PrefectResult


@task(name="nap", result=PrefectResult(), checkpoint=True)
def nap(seconds: float, value: float) -> float:
    time.sleep(float(seconds))
    return float(value)


with Flow("sleepy") as flow:
    nap(Parameter("seconds", default=1.0), Parameter("value", default=1.0))
'''


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("FLOWC_RESULTS_DB", "FLOWC_MOUNT")}


def _project(tmp_path: Path, specs: dict[str, str], modules: dict[str, str] | None = None) -> Path:
    """A copy of the project plus these specs and root-level modules, locked and generated."""
    project = copy_project(tmp_path / "project", generated=True, examples=True)
    for name, text in (modules or {}).items():
        (project / f"{name}.py").write_text(text)
    for name, text in specs.items():
        (project / "specs" / f"{name}.yaml").write_text(textwrap.dedent(text))
    for command in (("lock",), ("generate",)):
        done = flowc(*command, cwd=project, env=_env())
        assert done.returncode == 0, done.stdout + done.stderr
    return project


def _run(project: Path, spec: str, *extra: str, expect: int) -> tuple[dict[str, Any], str]:
    done = flowc("run", f"specs/{spec}.yaml", "--json", *extra, cwd=project, env=_env())
    assert done.returncode == expect, done.stdout + done.stderr
    return json.loads(done.stdout), done.stderr


WITH_FAILURE = """\
    name: with_failure
    project_name: lume
    composing_flows:
      - name: scale
        alias: start
        project_name: lume
        source: examples.flows.scale:flow
        parameters: {value: 2.0, factor: 3.0}
      - name: failing
        alias: broken
        project_name: lume
        source: examples.flows.failing:flow
        mapped_parameters:
          value: {parent_flow_name: start, parent_task_name: scale}
      - name: scale
        alias: after_broken
        project_name: lume
        source: examples.flows.scale:flow
        mapped_parameters:
          value: {parent_flow_name: broken, parent_task_name: fail}
      - name: combine
        alias: last
        project_name: lume
        source: examples.flows.combine:flow
        mapped_parameters:
          a: {parent_flow_name: after_broken, parent_task_name: scale}
          b: {parent_flow_name: independent, parent_task_name: scale}
      - name: scale
        alias: independent
        project_name: lume
        source: examples.flows.scale:flow
        parameters: {factor: 10.0}
        mapped_parameters:
          value: {parent_flow_name: start, parent_task_name: scale}
"""


def test_a_failing_child_fails_the_run_and_stops_only_what_depends_on_it(tmp_path: Path) -> None:
    project = _project(tmp_path, {"with_failure": WITH_FAILURE})
    summary, stderr = _run(project, "with_failure", expect=1)
    assert summary["state"] == "Failed" and summary["ok"] is False
    steps = {c["alias"]: c for c in summary["children"]}
    assert steps["start"]["state"] == "Success"
    assert steps["broken"]["state"] == "Failed"
    assert steps["broken"]["mapped"] == {"value": 6.0}  # it did receive its value, then raised
    assert "failing flow refuses value 6.0" in steps["broken"]["message"]
    assert steps["after_broken"]["state"] == "not run"
    assert steps["after_broken"]["reason"] == "upstream 'broken' failed"
    assert steps["after_broken"]["run_id"] is None
    assert steps["last"]["state"] == "not run"
    assert steps["last"]["reason"] == "upstream 'after_broken' was not run"
    # The independent branch finished, with the right number.
    assert steps["independent"]["state"] == "Success"
    assert steps["independent"]["results"] == {"scale-1": 60.0}
    assert "ValueError: failing flow refuses value 6.0" in stderr  # the child's traceback, for a person


def test_human_output_shows_the_failure_and_what_was_not_run(tmp_path: Path) -> None:
    project = _project(tmp_path, {"with_failure": WITH_FAILURE})
    done = flowc("run", "specs/with_failure.yaml", cwd=project, env=_env())
    assert done.returncode == 1
    out = " ".join(done.stderr.split())
    assert "✘ broken Failed" in out and "failing flow refuses value 6.0" in out
    assert "○ after_broken not run upstream 'broken' failed" in out
    assert "✔ independent Success" in out
    assert "with_failure: Failed" in out and "2 succeeded, 1 failed, 2 not run" in out


def test_a_failing_db_loader_is_the_reason_its_child_did_not_run(tmp_path: Path) -> None:
    spec = """\
        name: bad_index
        project_name: lume
        composing_flows:
          - name: distgen
            project_name: lume
            source: examples.flows.distgen:flow
            parameters: {n_particle: 50}
          - name: impact
            project_name: lume
            source: examples.flows.impact:flow
            mapped_parameters:
              distribution_file: {parent_flow_name: distgen, parent_task_name: save_distribution, map_type: file}
          - name: analysis
            project_name: lume
            source: examples.flows.analysis:flow
            mapped_parameters:
              emittance:
                parent_flow_name: impact
                parent_task_name: save_db_result
                map_type: db
                attribute_index: [outputs, end_norm_emit_y]
    """
    project = _project(tmp_path, {"bad_index": spec})
    summary, _ = _run(project, "bad_index", expect=1)
    steps = {c["alias"]: c for c in summary["children"]}
    assert steps["distgen"]["ok"] and steps["impact"]["ok"]
    assert steps["analysis"]["state"] == "not run"
    reason = steps["analysis"]["reason"]
    assert reason.startswith("task 'load_db_result' failed")
    assert "end_norm_emit_y" in reason


def test_independent_children_run_at_the_same_time(tmp_path: Path) -> None:
    spec = """\
        name: two_naps
        project_name: lume
        composing_flows:
          - {name: sleepy, alias: first, project_name: lume, source: "sleepy:flow", parameters: {value: 1.0}}
          - {name: sleepy, alias: second, project_name: lume, source: "sleepy:flow", parameters: {value: 2.0}}
          - name: combine
            project_name: lume
            source: examples.flows.combine:flow
            mapped_parameters:
              a: {parent_flow_name: first, parent_task_name: nap}
              b: {parent_flow_name: second, parent_task_name: nap}
    """
    project = _project(tmp_path, {"two_naps": spec}, {"sleepy": SLEEPY})
    summary, _ = _run(project, "two_naps", expect=0)
    steps = {c["alias"]: c for c in summary["children"]}
    assert steps["combine"]["results"] == {"combine-1": 3.0}
    spans = []
    for alias in ("first", "second"):
        start = datetime.fromisoformat(steps[alias]["started_at"])
        assert steps[alias]["duration_s"] >= 1.0
        spans.append((start, start + timedelta(seconds=steps[alias]["duration_s"])))
    (a_start, a_end), (b_start, b_end) = spans
    assert a_start < b_end and b_start < a_end  # the two naps overlapped


def test_a_child_whose_interface_changed_since_the_lock_is_refused(tmp_path: Path) -> None:
    spec = """\
        name: one_nap
        project_name: lume
        composing_flows:
          - {name: sleepy, project_name: lume, source: "sleepy:flow", parameters: {seconds: 0}}
    """
    project = _project(tmp_path, {"one_nap": spec}, {"sleepy": SLEEPY})
    changed = SLEEPY.replace(
        'Parameter("value", default=1.0)', 'Parameter("value", default=1.0) + Parameter("extra", required=True)'
    )
    (project / "sleepy.py").write_text(changed)
    done = flowc("run", "specs/one_nap.yaml", cwd=project, env=_env())
    assert done.returncode == 1
    assert "the interface of lume/sleepy changed since the lock was written" in done.stderr
    assert "flowc lock" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_child_source_that_no_longer_imports_is_refused(tmp_path: Path) -> None:
    spec = """\
        name: one_nap
        project_name: lume
        composing_flows:
          - {name: sleepy, project_name: lume, source: "sleepy:flow", parameters: {seconds: 0}}
    """
    project = _project(tmp_path, {"one_nap": spec}, {"sleepy": SLEEPY})
    (project / "sleepy.py").write_text("raise RuntimeError('broken on purpose')\n")
    done = flowc("run", "specs/one_nap.yaml", cwd=project, env=_env())
    assert done.returncode == 1
    assert "broken on purpose" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("value", ["1e-3", "0.001"])
def test_exponent_and_decimal_floats_are_the_same_number(value: str) -> None:
    from compiler.overrides import parse_value

    assert parse_value(value) == 0.001
    assert parse_value("1000") == 1000 and isinstance(parse_value("1000"), int)
    assert parse_value("'1000'") == "1000"
    assert parse_value("true") is True and parse_value("null") is None and parse_value("") == ""
