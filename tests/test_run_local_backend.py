"""`LocalBackend` in-process: Prefect's orchestration tasks swapped for the duration of a run only,
with the real tasks' semantics (final states, results read back from their Result location).
"""

from __future__ import annotations

from pathlib import Path

import prefect
from prefect import Flow, Parameter, task
from prefect.engine.results import PrefectResult
from prefect.engine.state import State
from prefect.tasks.prefect import create_flow_run, get_task_run_result, wait_for_flow_run

from compiler.runtime.local import (
    CREATE_FLOW_RUN,
    GET_TASK_RUN_RESULT,
    WAIT_FOR_FLOW_RUN,
    LocalBackend,
    LocalFlowRun,
    orchestration_kind,
)


@task(name="double", result=PrefectResult(), checkpoint=True)
def double(value: int) -> int:
    return 2 * value


@task(name="unpersisted")
def unpersisted(value: int) -> int:
    return value + 1


@task(name="explode", result=PrefectResult(), checkpoint=True)
def explode(value: int) -> int:
    raise RuntimeError(f"exploded on {value}")


with Flow("child") as CHILD:
    child_value = Parameter("value", required=True)
    double(child_value)
    unpersisted(child_value)

with Flow("exploding") as EXPLODING:
    explode(Parameter("value", default=1))

CHILDREN = {("test", "child"): CHILD, ("test", "exploding"): EXPLODING}


def _resolve(project_name: str, flow_name: str) -> Flow:
    return CHILDREN[(project_name, flow_name)]


def _parent(slug: str, child: str = "child", raise_final_state: bool = True) -> Flow:
    with Flow("parent") as parent:
        run = create_flow_run(flow_name=child, project_name="test", parameters={"value": 21})
        done = wait_for_flow_run(run, raise_final_state=raise_final_state)
        get_task_run_result(run, slug, upstream_tasks=[done])
    return parent


def _run(parent: Flow, backend: LocalBackend) -> State:
    with backend.installed(parent):
        state = parent.run(run_on_schedule=False)
    assert isinstance(state, State)
    return state


def _state_of(parent: Flow, state: State, kind: str) -> State:
    (found,) = [t for t in parent.tasks if orchestration_kind(t) == kind]
    return state.result[found]


def test_a_mapped_result_is_read_back_from_its_result_location(runtime_env: Path) -> None:
    parent = _parent("double-1")
    state = _run(parent, LocalBackend(_resolve))
    assert state.is_successful()
    assert _state_of(parent, state, "get_task_run_result").result == 42


def test_a_result_that_was_not_persisted_fails_with_a_clear_message(runtime_env: Path) -> None:
    parent = _parent("unpersisted-1")
    state = _run(parent, LocalBackend(_resolve))
    assert state.is_failed()
    message = _state_of(parent, state, "get_task_run_result").message
    assert "did not persist it" in message and "PrefectResult" in message


def test_wait_ends_in_the_childs_final_state_like_raise_final_state(runtime_env: Path) -> None:
    parent = _parent("explode-1", child="exploding")
    backend = LocalBackend(_resolve)
    state = _run(parent, backend)
    wait_state = _state_of(parent, state, "wait_for_flow_run")
    assert wait_state.is_failed()
    assert "finished in state <Failed" in wait_state.message
    assert _state_of(parent, state, "get_task_run_result").is_failed()  # TriggerFailed: never ran
    (run,) = backend.runs
    assert run.state is not None and run.state.is_failed()


def test_wait_without_raise_returns_the_finished_run(runtime_env: Path) -> None:
    parent = _parent("explode-1", child="exploding", raise_final_state=False)
    state = _run(parent, LocalBackend(_resolve))
    result = _state_of(parent, state, "wait_for_flow_run").result
    assert isinstance(result, LocalFlowRun) and result.state is not None and result.state.is_failed()


def test_the_swap_lasts_for_the_run_only_and_never_touches_prefects_own_tasks(runtime_env: Path) -> None:
    parent = _parent("double-1")
    orchestration = [t for t in parent.tasks if orchestration_kind(t)]
    assert len(orchestration) == 3
    backend = LocalBackend(_resolve)
    with backend.installed(parent) as swapped:
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


def test_children_run_with_their_project_and_a_local_run_id(runtime_env: Path) -> None:
    seen: dict[str, object] = {}

    @task(name="look")
    def look() -> None:
        seen.update(
            project_name=prefect.context.get("project_name"),
            flow_run_id=prefect.context.get("flow_run_id"),
            checkpointing=prefect.context.get("checkpointing"),
        )

    with Flow("looking") as looking:
        look()
    CHILDREN[("test", "looking")] = looking
    try:
        with Flow("parent") as parent:
            wait_for_flow_run(create_flow_run(flow_name="looking", project_name="test"), raise_final_state=True)
        backend = LocalBackend(_resolve)
        assert _run(parent, backend).is_successful()
    finally:
        del CHILDREN[("test", "looking")]
    (run,) = backend.runs
    assert seen == {"project_name": "test", "flow_run_id": run.run_id, "checkpointing": True}


def test_a_child_that_orchestrates_its_own_children_runs_them_locally_too(runtime_env: Path) -> None:
    with Flow("middle") as middle:
        inner = create_flow_run(flow_name="child", project_name="test", parameters={"value": 5})
        inner_done = wait_for_flow_run(inner, raise_final_state=True)
        get_task_run_result(inner, "double-1", upstream_tasks=[inner_done])
    CHILDREN[("test", "middle")] = middle
    try:
        with Flow("outer") as outer:
            wait_for_flow_run(create_flow_run(flow_name="middle", project_name="test"), raise_final_state=True)
        backend = LocalBackend(_resolve)
        assert _run(outer, backend).is_successful()
    finally:
        del CHILDREN[("test", "middle")]
    runs = {run.flow_name: run for run in backend.runs}
    assert set(runs) == {"middle", "child"}
    assert runs["child"].parent_run_id == runs["middle"].run_id
    assert {orchestration_kind(t) for t in middle.tasks} == {
        "create_flow_run",
        "wait_for_flow_run",
        "get_task_run_result",
    }  # restored after the run


def test_create_by_flow_id_needs_a_backend(runtime_env: Path) -> None:
    with Flow("parent") as parent:
        create_flow_run(flow_id="0c5b4c1c-0000-0000-0000-000000000000")
    state = _run(parent, LocalBackend(_resolve))
    message = _state_of(parent, state, "create_flow_run").message
    assert "finds child flows by flow_name" in message


def test_an_unknown_flow_fails_the_create_task(runtime_env: Path) -> None:
    with Flow("parent") as parent:
        create_flow_run(flow_name="nowhere", project_name="test")

    def resolve(project_name: str, flow_name: str) -> Flow:
        raise LookupError(f"{project_name}/{flow_name} has no source")

    state = _run(parent, LocalBackend(resolve))
    assert state.is_failed()
    assert "test/nowhere has no source" in _state_of(parent, state, "create_flow_run").message
