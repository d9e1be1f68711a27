"""The local backend's pieces in-process: the task swap, the child's report and how flowc loads
results from it, and how `create_flow_run` finds a step. Whole runs (real processes) are in
test_run.py, test_run_failures.py and test_run_isolation.py.
"""

from __future__ import annotations

import base64
import pickle
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prefect import Flow, Parameter, task
from prefect.engine.results import LocalResult, PrefectResult
from prefect.tasks.prefect import create_flow_run, get_task_run_result, wait_for_flow_run

from compiler.local.backend import ProcessBackend
from compiler.local.results import load_result
from compiler.runtime.child import bounded, build_report
from compiler.runtime.local import (
    CREATE_FLOW_RUN,
    GET_TASK_RUN_RESULT,
    WAIT_FOR_FLOW_RUN,
    ChildFlowNotFound,
    orchestration_kind,
)


@task(name="double", result=PrefectResult(), checkpoint=True)
def double(value: int) -> int:
    return 2 * value


@task(name="unpersisted")
def unpersisted(value: int) -> int:
    return value + 1


def _parent() -> Flow:
    with Flow("parent") as parent:
        run = create_flow_run(flow_name="child", project_name="test", parameters={"value": 21})
        done = wait_for_flow_run(run, raise_final_state=True)
        get_task_run_result(run, "double-1", upstream_tasks=[done])
    return parent


def _backend(steps: list[Any] | None = None) -> ProcessBackend:
    plan = SimpleNamespace(steps=steps or [])
    return ProcessBackend(plan, "specs/x.yaml", None, Path("."), "local-test")  # type: ignore[arg-type]


def test_the_swap_lasts_for_the_run_only_and_never_touches_prefects_own_tasks() -> None:
    parent = _parent()
    orchestration = [t for t in parent.tasks if orchestration_kind(t)]
    assert len(orchestration) == 3
    with _backend().installed(parent) as swapped:
        assert swapped == 3
        assert all(orchestration_kind(t) is None for t in orchestration)  # swapped on the copies
        assert create_flow_run.run is CREATE_FLOW_RUN  # the module-level tasks are untouched
        assert wait_for_flow_run.run is WAIT_FOR_FLOW_RUN
        assert get_task_run_result.run is GET_TASK_RUN_RESULT
    assert sorted(orchestration_kind(t) or "" for t in orchestration) == [
        "create_flow_run",
        "get_task_run_result",
        "wait_for_flow_run",
    ]


def _report(tmp_path: Path, flow: Flow) -> dict[str, Any]:
    state = flow.run(run_on_schedule=False, context={"checkpointing": True})
    return build_report(flow, state, str(tmp_path / "child.report.json"))


def test_a_reported_result_is_loaded_through_its_own_result_class(runtime_env: Path, tmp_path: Path) -> None:
    @task(name="local", result=LocalResult(dir=str(tmp_path / "results")), checkpoint=True)
    def local(value: int) -> dict:
        return {"value": value}

    with Flow("child") as flow:
        value = Parameter("value", default=4)
        double(value)
        local(value)
        unpersisted(value)
    report = _report(tmp_path, flow)
    assert report["state"] == "Success" and report["slugs"] == ["double-1", "local-1", "unpersisted-1", "value"]
    tasks = report["tasks"]
    assert tasks["double-1"]["result"]["class"] == "prefect.engine.results.prefect_result.PrefectResult"
    assert load_result(tasks["double-1"]["result"], "double") == 8
    assert tasks["local-1"]["result"]["location"].startswith(str(tmp_path / "results"))
    assert load_result(tasks["local-1"]["result"], "local") == {"value": 4}
    assert report["results"] == {"double-1": 8, "local-1": {"value": 4}}  # what a parent could map
    with pytest.raises(ValueError, match="did not persist it .*PrefectResult"):
        load_result(tasks["unpersisted-1"]["result"], "unpersisted")


def test_a_long_location_goes_to_a_file_and_a_large_value_is_summarised(runtime_env: Path, tmp_path: Path) -> None:
    @task(name="big", result=PrefectResult(), checkpoint=True)
    def big() -> str:
        return "y" * 200_000

    with Flow("child") as flow:
        big()
    report = _report(tmp_path, flow)
    entry = report["tasks"]["big-1"]["result"]
    assert entry["location"] is None and Path(entry["location_file"]).is_file()
    assert load_result(entry, "big") == "y" * 200_000
    assert report["results"]["big-1"] == bounded("y" * 200_000)
    assert report["results"]["big-1"]["size"] == 200_000


def test_bounded_values_keep_small_ones_and_digest_large_ones() -> None:
    assert bounded([1, 2, "three"]) == [1, 2, "three"]
    assert bounded(None) is None and bounded(1.5) == 1.5
    shown = bounded({"k": "v" * 70_000})
    assert shown["type"] == "dict" and shown["size"] > 70_000 and len(shown["sha256"]) == 64


class Foreign:
    """A Result-like class from a child's module: flowc must not import it to load a result."""


def test_a_result_class_outside_prefect_is_never_unpickled_in_flowc() -> None:
    entry = {
        "class": "tests.test_run_local_backend.Foreign",
        "has_value": True,
        "location": "x",
        "location_file": None,
        "pickle": base64.b64encode(pickle.dumps(Foreign())).decode(),
    }
    with pytest.raises(ValueError, match="cannot load its Result .*is not one of Prefect's classes"):
        load_result(entry, "foreign")


def _step(alias: str, project: str, name: str) -> SimpleNamespace:
    return SimpleNamespace(alias=alias, project_name=project, flow_name=name, source=f"m:{name}")


def test_create_flow_run_finds_the_step_by_alias_then_project_and_name_then_name_alone() -> None:
    steps = [_step("one", "lume", "scale"), _step("two", "lume", "scale"), _step("x", "other", "x")]
    backend = _backend(steps)
    assert backend.resolve("lume", "scale", "run two", nested=False).alias == "two"
    assert backend.resolve("lume", "scale", "some task", nested=True).alias == "one"
    assert backend.resolve("", "x", None, nested=True).alias == "x"  # no project_name: the name is unique
    with pytest.raises(ChildFlowNotFound, match="lume/nowhere is not a step of specs/x.yaml"):
        backend.resolve("lume", "nowhere", None, nested=True)
    with pytest.raises(ChildFlowNotFound, match="no step of specs/x.yaml composes a flow named 'nowhere'"):
        backend.resolve("", "nowhere", None, nested=True)


def test_a_flow_name_in_two_projects_needs_its_project() -> None:
    backend = _backend([_step("a", "p1", "same"), _step("b", "p2", "same")])
    with pytest.raises(ChildFlowNotFound, match="ambiguous: .* projects p1, p2; pass project_name"):
        backend.resolve("", "same", None, nested=True)


def test_create_by_flow_id_needs_a_backend() -> None:
    with pytest.raises(ChildFlowNotFound, match="finds child flows by flow_name"):
        _backend().create_flow_run(flow_id="0c5b4c1c-0000-0000-0000-000000000000")


def test_a_fork_server_ended_while_it_still_imports_is_killed_not_waited_for(tmp_path: Path) -> None:
    """`flowc run` starts the fork server before its checks; a run that stops there (a stale
    flow.py, a bad -p) does not wait for the server to finish importing Prefect."""
    import signal
    import sys

    from compiler.local.supervise import ForkServer, start_launcher

    launcher = start_launcher(sys.executable, tmp_path, "fork")
    assert isinstance(launcher, ForkServer)
    launcher.close()  # within milliseconds of its start: Prefect is not imported yet
    assert launcher._process is not None and launcher._process.returncode == -signal.SIGKILL
