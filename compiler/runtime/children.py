"""`run_child_flow`: the task a generated flow runs per child: create a run, wait, retry, time out.

Prefect 1's `create_flow_run` + `wait_for_flow_run` pair cannot retry a child: retrying the wait
re-waits on the failed run (prefect#7127), and retrying the creation returns that same run (its
default idempotency key is the task run's id). This task does both steps in one, so that:
- a child run that fails is followed by a NEW child run, `retries` times, `retry_delay` apart;
- each child run is created with a deterministic idempotency key (`compiler.keys`): the run key
  of the child and its parameter values, scoped to the composite's flow run, plus the attempt
  number. A retried or restarted orchestrator task asks for the same key and finds the run it
  already started: a finished successful run is taken as it is, a running one is waited for,
  and one that failed is left behind by moving on to the next attempt's key (keys cannot be
  reset, prefect#8847);
- the wait is bounded only by `timeout` (seconds; None: as long as the child runs, never
  Prefect's silent 12 hours); a child still running then is cancelled and the task fails.
- `labels` are the child run's labels (None: the child flow's own), as LUME-services passes them.

The task returns the successful child run's id, for `get_task_run_result`. The backend steps are
behind `ChildRuns`: `ServerChildRuns` (Prefect's API: `create_flow_run`, `FlowRunView`,
`Client.cancel_flow_run`) unless a local run installs its own (`compiler.runtime.local`).
Depends on prefect and the standard library only.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Optional, Protocol

import prefect
from prefect import task
from prefect.engine import signals
from prefect.engine.signals import signal_from_state
from prefect.engine.state import State

from compiler.keys import child_identity, idempotency_key, run_key

# Past attempts skipped over at most (each a failed run of an earlier try of this task).
MAX_ATTEMPTS = 1000
POLL_MAX_ENV = "FLOWC_CHILD_POLL_SECONDS"
DEFAULT_POLL_MAX_S = 10.0


@dataclass(frozen=True)
class ChildRequest:
    """One step's child run, as the generated flow asks for it."""

    flow_name: str
    project_name: str
    parameters: dict
    step: str
    labels: Optional[list] = None
    retries: int = 0
    retry_delay_s: float = 0.0
    timeout_s: Optional[float] = None
    point: Optional[dict] = None
    scope: str = "local"
    run_name: Optional[str] = None


class ChildRuns(Protocol):
    """What a backend offers for child runs; `run_child` decides the rest."""

    def version(self, request: ChildRequest) -> Optional[str]:
        """The child's version for its run key (source digest, registered flow id), or None."""

    def create(self, request: ChildRequest, key: str, idempotency_key: str) -> str:
        """Create a run (or return the one already created under `idempotency_key`)."""

    def state(self, run_id: str) -> State:
        """The run's current state."""

    def wait(self, run_id: str, timeout_s: Optional[float]) -> Optional[State]:
        """The run's final state, or None when `timeout_s` passed first."""

    def cancel(self, run_id: str) -> None:
        """Stop the run (it ends Cancelled or Failed)."""


def run_child(backend: ChildRuns, request: ChildRequest) -> str:
    """Run the child to success (a new run per retry) and return that run's id, else fail."""
    logger = prefect.context.get("logger")
    identity = child_identity(request.project_name, request.flow_name, backend.version(request))
    key = run_key(identity, request.parameters, request.point)
    runs_here = 0
    for attempt in range(MAX_ATTEMPTS):
        run_id = backend.create(request, key, idempotency_key(request.scope, request.step, key, attempt))
        state = backend.state(run_id)
        if state.is_successful():
            return run_id
        if state.is_finished():
            # Left by an earlier try of this task (a restart): never re-wait it, start anew.
            _log(logger, f"{request.step}: child run {run_id} already ended {type(state).__name__}; starting a new one")
            continue
        runs_here += 1
        final = backend.wait(run_id, request.timeout_s)
        if final is not None and final.is_successful():
            return run_id
        if final is None:
            backend.cancel(run_id)
            failure: signals.PrefectStateSignal = signals.FAIL(
                f"{request.step}: child run {run_id} was still running after its timeout of "
                f"{request.timeout_s:g} s, and was cancelled"
            )
        else:
            failure = signal_from_state(final)(
                message=f"{run_id} finished in state {final}", result=final
            )
        if runs_here > request.retries:
            raise failure
        _log(
            logger,
            f"{request.step}: child run {run_id} failed ({failure}); retry {runs_here} of "
            f"{request.retries} in {request.retry_delay_s:g} s, as a new run",
        )
        time.sleep(request.retry_delay_s)
    raise signals.FAIL(f"{request.step}: more than {MAX_ATTEMPTS} child runs under one key")


@task
def run_child_flow(
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
    """Start the child flow `project_name/flow_name` and wait for it; retry as new runs."""
    request = child_request(
        flow_name, project_name, parameters, step, labels, retries, retry_delay, timeout, point, run_name
    )
    return run_child(ServerChildRuns(), request)


def child_request(
    flow_name: str,
    project_name: str,
    parameters: Optional[dict],
    step: Optional[str],
    labels: Optional[list],
    retries: int,
    retry_delay: float,
    timeout: Optional[float],
    point: Optional[dict],
    run_name: Optional[str] = None,
) -> ChildRequest:
    """The task's arguments as a request, scoped to the running composite's flow run."""
    return ChildRequest(
        flow_name=flow_name,
        project_name=project_name,
        parameters=dict(parameters or {}),
        step=step or flow_name,
        labels=None if labels is None else list(labels),
        retries=int(retries),
        retry_delay_s=float(retry_delay),
        timeout_s=None if timeout is None else float(timeout),
        point=None if point is None else dict(point),
        scope=str(prefect.context.get("flow_run_id") or "local"),
        run_name=run_name,
    )


class ServerChildRuns:
    """Child runs on a Prefect 1 server or Cloud, through Prefect's own client API."""

    def __init__(self) -> None:
        self._flow_ids: dict[tuple[str, str], str] = {}

    def version(self, request: ChildRequest) -> Optional[str]:
        from prefect.backend import FlowView

        where = (request.project_name, request.flow_name)
        if where not in self._flow_ids:
            view = FlowView.from_flow_name(request.flow_name, project_name=request.project_name)
            self._flow_ids[where] = view.flow_id
        return self._flow_ids[where]

    def create(self, request: ChildRequest, key: str, idempotency_key: str) -> str:
        from prefect.tasks.prefect.flow_run import create_flow_run

        return create_flow_run.run(
            flow_name=request.flow_name,
            project_name=request.project_name,
            parameters=request.parameters,
            labels=request.labels,
            run_name=request.run_name,
            idempotency_key=idempotency_key,
        )

    def state(self, run_id: str) -> State:
        from prefect.backend import FlowRunView

        return FlowRunView.from_flow_run_id(run_id).state

    def wait(self, run_id: str, timeout_s: Optional[float]) -> Optional[State]:
        from prefect.backend import FlowRunView

        logger = prefect.context.get("logger")
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        poll_max = float(os.environ.get(POLL_MAX_ENV, DEFAULT_POLL_MAX_S))
        interval = min(1.0, poll_max)
        seen: Optional[str] = None
        while True:
            state = FlowRunView.from_flow_run_id(run_id).state
            name = type(state).__name__
            if name != seen:
                _log(logger, f"child run {run_id}: {name}: {state.message or ''}".rstrip(": "))
                seen = name
            if state.is_finished():
                return state
            if deadline is not None and time.monotonic() >= deadline:
                return None
            pause = interval if deadline is None else min(interval, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)
            interval = min(poll_max, interval * 1.5)

    def cancel(self, run_id: str) -> None:
        prefect.Client().cancel_flow_run(run_id)


def _log(logger: Any, message: str) -> None:
    if logger is not None:
        logger.info(message)
