"""An in-process stand-in for the Prefect backend, so a generated flow runs with no server.

A generated flow orchestrates its children with Prefect's own `create_flow_run`,
`wait_for_flow_run` and `get_task_run_result` tasks. `LocalBackend.installed(flow)` swaps, for
the duration of a run, the run function of exactly those tasks in one loaded flow (found by
their run function, not their names) for the methods below; nothing in the generated file
changes, and the module-level Prefect tasks that other flows use are never touched.

- `create_flow_run` finds the child flow with `resolve_flow(project_name, flow_name)` and starts
  `flow.run(parameters=...)` in a thread of this process, returning a local run id at once, as
  the server returns a flow run id while an agent deploys the run.
- `wait_for_flow_run` blocks until that run finishes; with `raise_final_state=True` its task
  ends in the child's final state (`signal_from_state`), like the real task.
- `get_task_run_result` loads a task's result from the child's final state through the task's
  own `Result` location (what the server path does with a persisted result), so a value that
  would not survive a real hand-over does not survive here either.

Child runs checkpoint their results (`checkpointing=True`), as runs deployed by an agent do.
Depends on prefect and the standard library only.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import prefect
from prefect import Flow, Parameter, Task
from prefect.engine.signals import signal_from_state
from prefect.engine.state import Failed, State, TriggerFailed
from prefect.tasks.prefect import flow_run as prefect_flow_run

LOCAL_RUN_PREFIX = "local-"
_LOGGER = logging.getLogger("flowc.runtime.local")

# The run functions of Prefect's orchestration tasks; every copy a flow holds shares them.
CREATE_FLOW_RUN = prefect_flow_run.create_flow_run.run
WAIT_FOR_FLOW_RUN = prefect_flow_run.wait_for_flow_run.run
GET_TASK_RUN_RESULT = prefect_flow_run.get_task_run_result.run
ORCHESTRATION_RUNS = {
    CREATE_FLOW_RUN: "create_flow_run",
    WAIT_FOR_FLOW_RUN: "wait_for_flow_run",
    GET_TASK_RUN_RESULT: "get_task_run_result",
}


class ChildFlowNotFound(LookupError):
    """`create_flow_run` named a flow this machine cannot run; the message says why."""


def orchestration_kind(task: Task) -> str | None:
    """Which of Prefect's orchestration tasks `task` is (a copy of), else None."""
    run = task.__dict__.get("run")
    try:
        return ORCHESTRATION_RUNS.get(run)  # type: ignore[arg-type]
    except TypeError:  # an unhashable callable is none of them
        return None


@dataclass
class LocalFlowRun:
    """One child flow run in this process: what started it, with what, and how it ended."""

    run_id: str
    run_name: str | None
    flow: Flow
    project_name: str
    parameters: dict[str, Any]
    parent_run_id: str | None  # the run whose create_flow_run task started this one
    task_name: str | None  # that create_flow_run task's name (`run <alias>` in generated flows)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    state: State | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def flow_name(self) -> str:
        return self.flow.name

    def task_states(self) -> dict[Task, State]:
        """The final state of every task of the child run (empty before it finishes)."""
        result = self.state.result if self.state is not None else None
        return result if isinstance(result, dict) else {}

    def task_with_slug(self, slug: str) -> Task | None:
        return next((task for task, known in self.flow.slugs.items() if known == slug), None)


class RunListener(Protocol):
    """Told when a child run starts and ends (from the child's thread); must be thread-safe."""

    def run_started(self, run: LocalFlowRun) -> None: ...

    def run_finished(self, run: LocalFlowRun) -> None: ...


class LocalBackend:
    """Child flow runs in threads of this process, behind Prefect's orchestration tasks."""

    def __init__(
        self,
        resolve_flow: Callable[[str, str], Flow],
        listener: RunListener | None = None,
    ) -> None:
        self._resolve_flow = resolve_flow
        self._listener = listener
        self._lock = threading.Lock()
        self._runs: dict[str, LocalFlowRun] = {}
        self._by_idempotency_key: dict[str, str] = {}
        self._threads: list[threading.Thread] = []
        self._installed: dict[int, list[tuple[Task, Callable[..., Any]]]] = {}

    @property
    def runs(self) -> list[LocalFlowRun]:
        """Every child run started so far, in the order they were created."""
        with self._lock:
            return list(self._runs.values())

    # Swapping the tasks --------------------------------------------------------------------

    @contextmanager
    def installed(self, flow: Flow) -> Iterator[int]:
        """Run `flow`'s orchestration tasks against this backend until the block ends.

        Yields how many tasks were swapped. Child flows that orchestrate flows of their own are
        swapped too when they start, and restored with `flow`.
        """
        count = self._install(flow)
        try:
            yield count
            self.join()  # not after an interrupt: abandoned children must not hold the exit
        finally:
            self._restore_all()

    def _install(self, flow: Flow) -> int:
        with self._lock:
            if id(flow) in self._installed:
                return len(self._installed[id(flow)])
            swapped: list[tuple[Task, Callable[..., Any]]] = []
            implementations = {
                "create_flow_run": self.create_flow_run,
                "wait_for_flow_run": self.wait_for_flow_run,
                "get_task_run_result": self.get_task_run_result,
            }
            for task in flow.tasks:
                kind = orchestration_kind(task)
                if kind is None:
                    continue
                original = task.__dict__["run"]
                task.run = _with_signature_of(original, implementations[kind])  # type: ignore[method-assign]
                swapped.append((task, original))
            self._installed[id(flow)] = swapped
            return len(swapped)

    def _restore_all(self) -> None:
        with self._lock:
            for swapped in self._installed.values():
                for task, original in swapped:
                    task.run = original  # type: ignore[method-assign]
            self._installed.clear()

    def join(self) -> None:
        """Wait for every child run started so far (a composite may end before its children)."""
        while True:
            with self._lock:
                pending = [t for t in self._threads if t.is_alive()]
            if not pending:
                return
            for thread in pending:
                thread.join()

    # The three tasks -----------------------------------------------------------------------

    def create_flow_run(
        self,
        flow_id: str | None = None,
        flow_name: str | None = None,
        project_name: str = "",
        parameters: dict | None = None,
        context: dict | None = None,
        labels: Any = None,
        run_name: str | None = None,
        run_config: Any = None,
        scheduled_start_time: Any = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Start the child flow in a thread of this process; return its local run id."""
        if flow_id and flow_name:
            raise ValueError(
                "Received both `flow_id` and `flow_name`. Only one flow identifier can be passed."
            )
        if not flow_id and not flow_name:
            raise ValueError(
                "Both `flow_id` and `flow_name` are null. You must pass a flow identifier"
            )
        if flow_id:
            raise ChildFlowNotFound(
                f"a local run finds child flows by flow_name and project_name; flow_id "
                f"{flow_id!r} names a flow registered on a Prefect backend"
            )
        if idempotency_key is None:
            idempotency_key = prefect.context.get("task_run_id")
            map_index = prefect.context.get("map_index")
            if idempotency_key and map_index is not None:
                idempotency_key += f"-{map_index}"
        with self._lock:
            if idempotency_key and idempotency_key in self._by_idempotency_key:
                return self._by_idempotency_key[idempotency_key]  # a retried task: same run
        flow = self._resolve_flow(project_name, flow_name or "")
        self._install(flow)
        if not run_name:
            current = prefect.context.get("flow_run_name")
            run_name = f"{current}-{flow.name}" if current else None
        run = LocalFlowRun(
            run_id=f"{LOCAL_RUN_PREFIX}{uuid.uuid4()}",
            run_name=run_name,
            flow=flow,
            project_name=project_name,
            parameters=dict(parameters or {}),
            parent_run_id=prefect.context.get("flow_run_id"),
            task_name=prefect.context.get("task_name"),
        )
        start_at = _start_time(scheduled_start_time)
        extra_context = dict(context or {})
        thread = threading.Thread(
            target=self._execute,
            args=(run, extra_context, start_at),
            name=f"flowc {run.run_name or flow.name}",
            daemon=True,
        )
        with self._lock:
            self._runs[run.run_id] = run
            if idempotency_key:
                self._by_idempotency_key[idempotency_key] = run.run_id
            self._threads.append(thread)
        _task_logger().info(
            f"Created local flow run {run.run_name or run.run_id!r} for flow {flow.name!r}"
        )
        thread.start()
        return run.run_id

    def wait_for_flow_run(
        self,
        flow_run_id: str,
        stream_states: bool = True,
        stream_logs: bool = False,
        raise_final_state: bool = False,
        max_duration: timedelta = timedelta(hours=12),
    ) -> LocalFlowRun:
        """Block until the child run ends; then return it, or end in its state."""
        run = self._run(flow_run_id)
        if not run.done.wait(timeout=max_duration.total_seconds()):
            raise RuntimeError(
                f"Flow run exceeded maximum duration of {max_duration.total_seconds()} seconds"
            )
        state = run.state
        assert state is not None  # set before `done`
        if stream_states:
            _task_logger().info(
                f"Flow {run.run_name or run.run_id!r}: Entered state <{type(state).__name__}>: "
                f"{state.message}"
            )
        if raise_final_state:
            raise signal_from_state(state)(
                message=f"{flow_run_id} finished in state {state}", result=run
            )
        return run

    def get_task_run_result(
        self, flow_run_id: str, task_slug: str, map_index: int = -1, poll_time: int = 5
    ) -> Any:
        """The result of the child's task `task_slug`, read back from its Result location."""
        if not task_slug:
            raise ValueError("Required argument `task_slug` is empty")
        if prefect.context.get("flow_run_id") == flow_run_id:
            raise ValueError(
                "Given `flow_run_id` is the same as the currently running flow. The "
                "`get_task_run_result` task cannot be used to retrieve results from the "
                "flow run it belongs to."
            )
        run = self._run(flow_run_id)
        run.done.wait()
        described = f"task {task_slug!r} of flow run {run.run_name or run.run_id!r} ({run.flow_name})"
        task = run.task_with_slug(task_slug)
        if task is None:
            slugs = ", ".join(sorted(run.flow.slugs.values()))
            raise ValueError(f"flow {run.flow_name!r} has no task with slug {task_slug!r}; it has {slugs}")
        task_state = run.task_states().get(task)
        if task_state is None:
            raise ValueError(f"{described} never ran; the flow run ended in state {run.state}")
        if not task_state.is_finished():
            raise ValueError(f"The task result cannot be loaded if it is not finished ({described}).")
        if task_state.is_failed():
            raise ValueError(f"{described} failed, so it has no result: {task_state.message}")
        if task_state.is_mapped():
            children = list(task_state.map_states)
            if map_index != -1:
                return _persisted_value(children[map_index], f"{described}[{map_index}]")
            return [_persisted_value(child, f"{described}[{i}]") for i, child in enumerate(children)]
        return _persisted_value(task_state, described)

    # Running a child ----------------------------------------------------------------------

    def _run(self, flow_run_id: str) -> LocalFlowRun:
        with self._lock:
            run = self._runs.get(flow_run_id)
        if run is None:
            raise ValueError(f"no local flow run {flow_run_id!r}: it was not created by this run")
        return run

    def _execute(self, run: LocalFlowRun, extra_context: dict[str, Any], start_at: float | None) -> None:
        """The child's thread: whatever happens, the run ends with a state and `done` is set."""
        state: State | None = None
        started = time.perf_counter()
        try:
            if start_at is not None:
                time.sleep(max(0.0, start_at - time.time()))
            context = {
                "flow_run_id": run.run_id,
                "project_name": run.project_name,
                "checkpointing": True,
                **({"flow_run_name": run.run_name} if run.run_name else {}),
                **extra_context,
            }
            run.started_at = datetime.now(timezone.utc)
            started = time.perf_counter()
            self._notify("run_started", run)
            state = run.flow.run(parameters=run.parameters, run_on_schedule=False, context=context)
            if state is None:
                state = Failed("the flow run returned no state")
        except Exception as error:  # parameters the flow rejects, or a crash in its runner
            state = Failed(f"flow run could not start: {error}", result=error)
        except BaseException as error:  # even an interrupt must not leave a waiting task hanging
            state = Failed(f"flow run was interrupted: {error!r}", result=error)
            raise
        finally:
            run.duration_s = time.perf_counter() - started
            run.finished_at = datetime.now(timezone.utc)
            run.state = state
            run.done.set()
        self._notify("run_finished", run)

    def _notify(self, event: str, run: LocalFlowRun) -> None:
        if self._listener is None:
            return
        try:
            getattr(self._listener, event)(run)
        except Exception:  # a broken display (a closed pipe) must not stop or hang the run
            _LOGGER.debug("flowc: run listener failed on %s", event, exc_info=True)


def _task_logger() -> logging.Logger:
    """The running task's logger, as Prefect's own tasks use; this module's outside a task."""
    logger = prefect.context.get("logger")
    return logger if isinstance(logger, logging.Logger) else _LOGGER


def _with_signature_of(original: Callable[..., Any], implementation: Callable[..., Any]) -> Callable[..., Any]:
    """Call `implementation` with every argument of `original`'s signature, defaults filled in."""
    signature = inspect.signature(original)

    @functools.wraps(original)
    def run(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return implementation(**bound.arguments)

    run.__flowc_local__ = True  # type: ignore[attr-defined]
    return run


def _start_time(scheduled_start_time: Any) -> float | None:
    """`create_flow_run`'s scheduled_start_time (a datetime or a delay) as an epoch time."""
    if scheduled_start_time is None:
        return None
    if isinstance(scheduled_start_time, timedelta):
        return time.time() + scheduled_start_time.total_seconds()
    if isinstance(scheduled_start_time, datetime):
        return scheduled_start_time.timestamp()
    raise TypeError(f"scheduled_start_time must be a datetime or timedelta, not {scheduled_start_time!r}")


def _persisted_value(state: State, described: str) -> Any:
    """Read a task's value back from its Result location, as a run on a server would."""
    result = state._result
    location = getattr(result, "location", None)
    if location is None:
        if getattr(result, "value", None) is None:
            return None
        raise ValueError(
            f"{described} returned a value but did not persist it ({type(result).__name__}), so "
            "another flow run cannot load it; give the task result=PrefectResult() and checkpoint=True"
        )
    return result.read(location).value


def failure_detail(run: LocalFlowRun) -> str:
    """Why a child run failed, in one line: its failing tasks' messages, else its state's."""
    state = run.state
    if state is None:
        return "still running"
    causes = [
        f"{task.name}: {task_state.message}"
        for task, task_state in run.task_states().items()
        if task_state.is_failed() and not isinstance(task_state, TriggerFailed)
    ]
    return "; ".join(sorted(causes)) or (state.message or type(state).__name__)


def child_results(run: LocalFlowRun) -> Mapping[str, Any]:
    """The persisted results of a finished child run, by task slug: what a parent could map."""
    values: dict[str, Any] = {}
    for task, task_state in run.task_states().items():
        if isinstance(task, Parameter) or not task_state.is_successful() or task_state.is_mapped():
            continue
        location = getattr(task_state._result, "location", None)
        if location is not None:
            values[run.flow.slugs[task]] = task_state._result.read(location).value
    return dict(sorted(values.items()))
