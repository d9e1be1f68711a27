"""What a generated prefect3 flow calls around `run_deployment`: parameters, keys, waiting, values.

Written against the API Prefect 2.14 and 3.x share; where they differ (a sync client, how a
state's persisted result is read), both ways are here, chosen by what the installed Prefect has.
"""

from __future__ import annotations

import asyncio
import difflib
import inspect
import os
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, TypeVar
from uuid import UUID

from prefect import get_client, task
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterIdempotencyKey,
)
from prefect.client.schemas.objects import FlowRun

from compiler.keys import idempotency_key, run_key

# What a step hands on: the child run's id, name and deployment (Prefect refuses a FlowRun as a
# task argument: its state would look like an upstream dependency).
ChildRun = Dict[str, str]
T = TypeVar("T")

# How often run_deployment asks the server whether a child has finished (Prefect's default: 5 s).
POLL_SECONDS = float(os.environ.get("FLOWC_POLL_SECONDS", "1"))
# Keys tried for one child before giving up: the run key, then one more per failed run.
MAX_KEYS = 1000
# How long a finished child's task runs may take to appear (3.x records them from events, after
# the child's own state); 2.14 writes them before the child ends.
RESULT_WAIT_SECONDS = float(os.environ.get("FLOWC_RESULT_WAIT_SECONDS", "120"))


class ChildFailed(RuntimeError):
    """A child flow run ended in a state other than Completed, or did not end in time."""


class CompositeFailed(RuntimeError):
    """A step did not succeed; the message says which, and why the others did not run."""


class CompositeParameters:
    """The composite parameters by their `<alias>-<parameter>` names, with defaults."""

    def __init__(self, defaults: Mapping[str, Any], required: Sequence[str]) -> None:
        self.defaults = dict(defaults)
        self.required = tuple(required)

    def resolve(self, given: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
        """The defaults updated with what the run was given; every problem in one error."""
        given = dict(given or {})
        known = set(self.defaults) | set(self.required)
        problems = []
        for name in sorted(set(given) - known):
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(known)) or 'none'}"
            problems.append(f"unknown parameter {name!r}{hint}")
        for name in self.required:
            if name not in given:
                problems.append(f"parameter {name!r} is required")
        if problems:
            raise ValueError("; ".join(problems))
        return {**self.defaults, **given}


# Client calls -----------------------------------------------------------------------------------


def _client_call(method: str, *args: Any, **kwargs: Any) -> Any:
    """One call of Prefect's client: 3.x has a sync client; 2.14 only the async one, which runs
    here on an event loop of its own thread (the caller may be inside Prefect's own loop)."""
    if "sync_client" in inspect.signature(get_client).parameters:
        with get_client(sync_client=True) as client:
            return getattr(client, method)(*args, **kwargs)

    async def call() -> Any:
        async with get_client() as client:
            return await getattr(client, method)(*args, **kwargs)

    return _in_own_thread(lambda: asyncio.run(call()))


def _in_own_thread(function: Callable[[], T]) -> T:
    box: Dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = function()
        except BaseException as error:  # handed to the caller's thread
            box["error"] = error

    thread = threading.Thread(target=target, name="flowc-client")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _state_value(state: Any) -> Any:
    """A state's value, loading a persisted result (2.14 needs `fetch=True` for that)."""
    if "fetch" in inspect.signature(state.result).parameters:
        return state.result(raise_on_failure=True, fetch=True)
    return state.result(raise_on_failure=True)


# Keys -------------------------------------------------------------------------------------------


def child_key(
    step: str, deployment: str, parameters: Mapping[str, Any], point: Optional[Mapping[str, Any]] = None
) -> str:
    """The idempotency key for this child run (or scan point): its run key, unless a run under
    that key failed.

    The run key (compiler.keys) is a digest of the child's deployment, its parameters and its
    point; the idempotency key scopes it to this composite flow run and to an attempt. A retried
    or restarted composite run finds the child run its key names and reuses it while it runs or
    after it succeeded; a key whose run failed, crashed or was cancelled is not reused: the next
    attempt's key names a new run.
    """
    from prefect.runtime import flow_run

    key = run_key({"deployment": deployment}, parameters, point)
    flow_name, _, deployment_name = deployment.partition("/")
    for attempt in range(MAX_KEYS):
        candidate = idempotency_key(str(flow_run.id), step, key, attempt)
        runs = _client_call(
            "read_flow_runs",
            flow_run_filter=FlowRunFilter(idempotency_key=FlowRunFilterIdempotencyKey(any_=[candidate])),
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment_name])),
        )
        if not any(_ended_unsuccessfully(run) for run in runs):
            return candidate
    raise ChildFailed(f"{deployment}: {MAX_KEYS} runs with these parameters failed; not starting another")


def _ended_unsuccessfully(run: FlowRun) -> bool:
    state = run.state
    if state is not None and state.type.value == "CANCELLING":  # a timed-out run on its way out
        return True
    return state is not None and state.is_final() and not state.is_completed()


# Waiting ----------------------------------------------------------------------------------------


def finished(child: FlowRun, timeout: Optional[float]) -> ChildRun:
    """The child run when it completed; else its failure, or, still running after `timeout`
    seconds (run_deployment stopped waiting), it is cancelled and fails."""
    state = child.state
    if state is not None and state.is_completed():
        return {"id": str(child.id), "name": child.name}
    if state is not None and state.is_final():
        message = f": {state.message}" if state.message else ""
        raise ChildFailed(f"child run {child.name!r} ({child.id}) ended {state.type.value}{message}")
    from prefect.states import Cancelling

    _client_call("set_flow_run_state", child.id, Cancelling(message=f"flowc: timed out after {timeout} s"), force=True)
    raise ChildFailed(f"child run {child.name!r} ({child.id}) was still running after {timeout} s; cancelled")


# Values -----------------------------------------------------------------------------------------


@task(name="task_result")
def task_result(child: ChildRun, task_name: str) -> Any:
    """The persisted result of the child run's task named `task_name` (run exactly once).

    Prefect 3 records task runs from the events the child sends, so they may appear a little
    after the child has completed: their absence is waited out for RESULT_WAIT_SECONDS.
    """
    deadline = time.monotonic() + RESULT_WAIT_SECONDS
    while True:
        task_runs = _client_call(
            "read_task_runs", flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(child["id"])]))
        )
        matching = [run for run in task_runs if _task_name_of(run.name) == task_name]
        completed = [run for run in matching if run.state is not None and run.state.is_completed()]
        if completed or time.monotonic() > deadline:
            break
        time.sleep(POLL_SECONDS)
    if len(completed) != 1:
        names = sorted({_task_name_of(run.name) for run in task_runs})
        what = "no completed run" if not completed else f"{len(completed)} completed runs"
        raise ChildFailed(
            f"child run {child['name']!r} ({child['id']}) has {what} of task {task_name!r} "
            f"(its tasks: {', '.join(names) or 'none'})"
        )
    try:
        return _state_value(completed[0].state)
    except Exception as error:  # Prefect's errors for a missing or unpersisted result differ by version
        raise ChildFailed(
            f"the result of task {task_name!r} in child run {child['name']!r} ({child['id']}) cannot be loaded "
            f"({type(error).__name__}: {error}); the task needs persist_result=True"
        ) from error


@task(name="return_value")
def return_value(child: ChildRun) -> Any:
    """The child flow's own return value (its flow needs persist_result=True)."""
    run = _client_call("read_flow_run", UUID(child["id"]))
    try:
        return _state_value(run.state)
    except Exception as error:
        raise ChildFailed(
            f"the return value of child run {child['name']!r} ({child['id']}) cannot be loaded "
            f"({type(error).__name__}: {error}); the flow needs persist_result=True"
        ) from error


def _task_name_of(task_run_name: str) -> str:
    """Prefect names a task's runs `<task name>-<suffix>` (a counter on 2.14, random on 3.x)."""
    return task_run_name.rpartition("-")[0] or task_run_name


def outcome(steps: Mapping[str, Any]) -> Dict[str, Any]:
    """Wait for every step; {alias: child flow run id (a list, in point order, for a per-point
    step)} when all succeeded, else one error naming each step (and scan point) that failed and
    each that did not run."""
    failed: List[str] = []
    not_run: List[str] = []
    runs: Dict[str, Any] = {}
    for alias, future in steps.items():
        state = future.wait()
        if state is None:  # 3.x: wait() returns nothing; the state is on the future
            state = future.state
        if state.is_completed():
            value = _state_value(state)
            if "runs" not in value:
                runs[alias] = value["id"]
                continue
            runs[alias] = [entry.get("id") for entry in value["runs"]]
            failed += [f"{entry['name']}: {entry['failed']}" for entry in value["runs"] if "failed" in entry]
            not_run += [entry["name"] for entry in value["runs"] if "not_run" in entry]
        elif state.is_final():
            failed.append(f"{alias}: {state.message or state.type.value}")
        else:
            not_run.append(alias)
    if failed or not_run:
        parts = [f"failed: {'; '.join(failed)}"] if failed else []
        if not_run:
            parts.append(f"not run: {', '.join(not_run)}")
        raise CompositeFailed(" | ".join(parts))
    return runs
