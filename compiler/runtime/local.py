"""Prefect's orchestration tasks, answered locally: the swap, and the child side of nested runs.

A generated flow orchestrates its children with flowc's `run_child_flow` task and Prefect's
own `get_task_run_result` (hand-written flows with `create_flow_run` and `wait_for_flow_run`).
For a local run, `swap_orchestration(flow, ...)` replaces, in one loaded flow, the run function
of exactly those task copies (found by their run function, not their names) and `restore()` puts them back; nothing in the generated
file changes, and the module-level Prefect tasks other flows use are never touched. flowc's own
process swaps them for `compiler.local.backend.ProcessBackend`, which runs each child in a
process of its own.

Inside such a child, `install_nested_runs(flow, channel)` swaps the same tasks (and
`StartFlowRun`, for the whole child process) for requests to flowc over the child's private
channel, so a child that composes flows itself gets its children from the same composition,
supervised by the same flowc, instead of a Prefect server it cannot reach.
Depends on prefect and the standard library only.
"""

from __future__ import annotations

import base64
import functools
import inspect
import logging
import pickle
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

import prefect
from prefect import Flow, Task
from prefect.engine import state as prefect_states
from prefect.engine.signals import signal_from_state
from prefect.engine.state import Failed, Running, State
from prefect.tasks.prefect import flow_run as prefect_flow_run

from compiler.runtime.children import ChildRequest, child_request, run_child, run_child_flow

if TYPE_CHECKING:
    from compiler.runtime.child import ParentChannel

LOCAL_RUN_PREFIX = "local-"
_LOGGER = logging.getLogger("flowc.runtime.local")

# The run functions of Prefect's orchestration tasks; every copy a flow holds shares them.
CREATE_FLOW_RUN = prefect_flow_run.create_flow_run.run
WAIT_FOR_FLOW_RUN = prefect_flow_run.wait_for_flow_run.run
GET_TASK_RUN_RESULT = prefect_flow_run.get_task_run_result.run
RUN_CHILD_FLOW = run_child_flow.run  # flowc's, what generated flows use (compiler.runtime.children)
ORCHESTRATION_RUNS = {
    RUN_CHILD_FLOW: "run_child_flow",
    CREATE_FLOW_RUN: "create_flow_run",
    WAIT_FOR_FLOW_RUN: "wait_for_flow_run",
    GET_TASK_RUN_RESULT: "get_task_run_result",
}

Swapped = List[Tuple[Task, Callable[..., Any]]]
# How flowc answers a wait whose bound passed (Prefect's own wait_for_flow_run message).
STILL_RUNNING = "exceeded maximum duration"


class ChildFlowNotFound(LookupError):
    """`create_flow_run` named a flow this run cannot start; the message says why."""


def orchestration_kind(task: Task) -> Optional[str]:
    """Which of Prefect's orchestration tasks `task` is (a copy of), else None."""
    run = task.__dict__.get("run")
    try:
        return ORCHESTRATION_RUNS.get(run)  # type: ignore[arg-type]
    except TypeError:  # an unhashable callable is none of them
        return None


def swap_orchestration(flow: Flow, implementations: Dict[str, Callable[..., Any]]) -> Swapped:
    """Point `flow`'s orchestration task copies at `implementations` (by kind); returns what to restore."""
    swapped: Swapped = []
    for task in flow.tasks:
        kind = orchestration_kind(task)
        if kind is None or kind not in implementations:
            continue
        original = task.__dict__["run"]
        task.run = with_signature_of(original, implementations[kind])  # type: ignore[method-assign]
        swapped.append((task, original))
    return swapped


def restore(swapped: Swapped) -> None:
    for task, original in swapped:
        task.run = original  # type: ignore[method-assign]


def with_signature_of(original: Callable[..., Any], implementation: Callable[..., Any]) -> Callable[..., Any]:
    """Call `implementation` with every argument of `original`'s signature, defaults filled in."""
    signature = inspect.signature(original)

    @functools.wraps(original)
    def run(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return implementation(**bound.arguments)

    run.__flowc_local__ = True  # type: ignore[attr-defined]
    return run


def task_logger() -> logging.Logger:
    """The running task's logger, as Prefect's own tasks use; this module's outside a task."""
    logger = prefect.context.get("logger")
    return logger if isinstance(logger, logging.Logger) else _LOGGER


def check_flow_identifier(flow_id: Optional[str], flow_name: Optional[str]) -> None:
    """`create_flow_run`'s own argument checks, then the one a local run adds."""
    if flow_id and flow_name:
        raise ValueError("Received both `flow_id` and `flow_name`. Only one flow identifier can be passed.")
    if not flow_id and not flow_name:
        raise ValueError("Both `flow_id` and `flow_name` are null. You must pass a flow identifier")
    if flow_id:
        raise ChildFlowNotFound(
            f"a local run finds child flows by flow_name and project_name; flow_id "
            f"{flow_id!r} names a flow registered on a Prefect backend"
        )


def default_idempotency_key(given: Optional[str]) -> Optional[str]:
    """As Prefect's task: the task run id (with the map index), so a retried task reuses its run."""
    if given is not None:
        return given
    key = prefect.context.get("task_run_id")
    map_index = prefect.context.get("map_index")
    if key and map_index is not None:
        key = f"{key}-{map_index}"
    return key


def state_named(name: str, message: Optional[str]) -> State:
    """A Prefect state of the class named `name` (Failed for a name Prefect has no signal for)."""
    cls = getattr(prefect_states, name, None)
    if not (isinstance(cls, type) and issubclass(cls, State)):
        cls = Failed
    state = cls(message=message)
    try:
        signal_from_state(state)
    except ValueError:
        state = Failed(message=message)
    return state


# Inside a child: nested runs through flowc ----------------------------------------------------


class NestedRun:
    """What `wait_for_flow_run` returns in a child: the run id and its final state."""

    def __init__(self, flow_run_id: str, state: State) -> None:
        self.flow_run_id = flow_run_id
        self.state = state

    def __repr__(self) -> str:
        return f"NestedRun({self.flow_run_id!r}, {self.state!r})"


class NestedBackend:
    """The three tasks (and StartFlowRun) inside a child: each a request to flowc."""

    def __init__(self, channel: Optional[ParentChannel]) -> None:
        self._channel = channel

    def _call(self, op: str, **arguments: Any) -> Dict[str, Any]:
        if self._channel is None:
            raise ChildFlowNotFound("this child runs without a channel to flowc, so it cannot start flow runs")
        return self._channel.call(op, **arguments)

    def create(
        self,
        flow_name: Optional[str],
        project_name: Optional[str],
        parameters: Optional[dict],
        context: Optional[dict],
        run_name: Optional[str],
        idempotency_key: Optional[str],
        scheduled_start_time: Any,
    ) -> str:
        reply = self._call(
            "create",
            flow_name=flow_name,
            project_name=project_name or "",
            parameters=base64.b64encode(pickle.dumps(dict(parameters or {}), protocol=4)).decode("ascii"),
            context=dict(context or {}),
            run_name=run_name,
            idempotency_key=default_idempotency_key(idempotency_key),
            task_name=prefect.context.get("task_name"),
            delay_s=_delay(scheduled_start_time),
        )
        task_logger().info(f"Created local flow run {reply['run_id']!r} for flow {flow_name!r}")
        return str(reply["run_id"])

    def wait(self, flow_run_id: str, max_duration: Optional[float]) -> State:
        reply = self._call("wait", run_id=flow_run_id, max_duration_s=max_duration)
        return state_named(reply["state"], reply.get("message"))

    # The task implementations ---------------------------------------------------------------

    def create_flow_run(
        self,
        flow_id: Optional[str] = None,
        flow_name: Optional[str] = None,
        project_name: str = "",
        parameters: Optional[dict] = None,
        context: Optional[dict] = None,
        labels: Any = None,
        run_name: Optional[str] = None,
        run_config: Any = None,
        scheduled_start_time: Any = None,
        idempotency_key: Optional[str] = None,
    ) -> str:
        check_flow_identifier(flow_id, flow_name)
        return self.create(flow_name, project_name, parameters, context, run_name, idempotency_key, scheduled_start_time)

    def wait_for_flow_run(
        self,
        flow_run_id: str,
        stream_states: bool = True,
        stream_logs: bool = False,
        raise_final_state: bool = False,
        max_duration: timedelta = timedelta(hours=12),
    ) -> NestedRun:
        state = self.wait(flow_run_id, max_duration.total_seconds() if max_duration else None)
        if stream_states:
            task_logger().info(f"Flow {flow_run_id!r}: Entered state <{type(state).__name__}>: {state.message}")
        run = NestedRun(flow_run_id, state)
        if raise_final_state:
            raise signal_from_state(state)(message=f"{flow_run_id} finished in state {state}", result=run)
        return run

    def get_task_run_result(self, flow_run_id: str, task_slug: str, map_index: int = -1, poll_time: int = 5) -> Any:
        if not task_slug:
            raise ValueError("Required argument `task_slug` is empty")
        reply = self._call("result", run_id=flow_run_id, slug=task_slug, map_index=map_index)
        with open(reply["file"], "rb") as handle:
            return pickle.load(handle)

    def run_child_flow(
        self,
        flow_name: str,
        project_name: str,
        parameters: Optional[dict] = None,
        step: Optional[str] = None,
        labels: Optional[list] = None,
        retries: int = 0,
        retry_delay: float = 0.0,
        timeout: Optional[float] = None,
        point: Optional[dict] = None,
        run_name: Optional[str] = None,
    ) -> str:
        """A generated composite running as a child: its steps' runs through flowc, same logic."""
        request = child_request(
            flow_name, project_name, parameters, step, labels, retries, retry_delay, timeout, point, run_name
        )
        return run_child(_NestedChildRuns(self), request)


class _NestedChildRuns:
    """`compiler.runtime.children.ChildRuns` over the channel to flowc."""

    def __init__(self, backend: NestedBackend) -> None:
        self._backend = backend

    def version(self, request: ChildRequest) -> Optional[str]:
        return None

    def create(self, request: ChildRequest, key: str, idempotency_key: str) -> str:
        return self._backend.create(
            request.flow_name, request.project_name, request.parameters, None, request.run_name, idempotency_key, None
        )

    def state(self, run_id: str) -> State:
        try:
            return self._backend.wait(run_id, 0.0)
        except RuntimeError as error:
            if STILL_RUNNING not in str(error):
                raise
            return Running("running under flowc")

    def wait(self, run_id: str, timeout_s: Optional[float]) -> Optional[State]:
        try:
            return self._backend.wait(run_id, timeout_s)
        except RuntimeError as error:
            if STILL_RUNNING not in str(error) or timeout_s is None:
                raise
            return None

    def cancel(self, run_id: str) -> None:
        """flowc stops the child at its step's timeout itself."""


def install_nested_runs(flow: Flow, channel: Optional[ParentChannel]) -> NestedBackend:
    """In a child process: its orchestration tasks and every StartFlowRun ask flowc for their runs."""
    backend = NestedBackend(channel)
    swap_orchestration(
        flow,
        {
            "run_child_flow": backend.run_child_flow,
            "create_flow_run": backend.create_flow_run,
            "wait_for_flow_run": backend.wait_for_flow_run,
            "get_task_run_result": backend.get_task_run_result,
        },
    )

    def start_flow_run(
        self: Any,
        flow_name: Optional[str] = None,
        project_name: Optional[str] = None,
        parameters: Optional[dict] = None,
        run_config: Any = None,
        new_flow_context: Optional[dict] = None,
        run_name: Optional[str] = None,
        idempotency_key: Optional[str] = None,
        scheduled_start_time: Any = None,
    ) -> str:
        flow_name = flow_name if flow_name is not None else self.flow_name
        project_name = project_name if project_name is not None else self.project_name
        parameters = parameters if parameters is not None else self.parameters
        new_flow_context = new_flow_context if new_flow_context is not None else self.new_flow_context
        run_name = run_name if run_name is not None else self.run_name
        if scheduled_start_time is None:
            scheduled_start_time = self.scheduled_start_time
        if flow_name is None:
            raise ValueError("Must provide a flow name.")
        run_id = backend.create(
            flow_name, project_name, parameters, new_flow_context, run_name, idempotency_key, scheduled_start_time
        )
        if not self.wait:
            return run_id
        state = backend.wait(run_id, None)
        raise signal_from_state(state)(f"{run_id} finished in state {state}")

    prefect_flow_run.StartFlowRun.run = start_flow_run  # this process runs one child flow only
    return backend


def _delay(scheduled_start_time: Any) -> Optional[float]:
    """`scheduled_start_time` (a datetime or a delay) as seconds from now."""
    if scheduled_start_time is None:
        return None
    if isinstance(scheduled_start_time, timedelta):
        return scheduled_start_time.total_seconds()
    if hasattr(scheduled_start_time, "timestamp"):
        import time

        return scheduled_start_time.timestamp() - time.time()
    raise TypeError(f"scheduled_start_time must be a datetime or timedelta, not {scheduled_start_time!r}")
