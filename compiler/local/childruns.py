"""`run_child_flow` in `flowc run`: its backend steps over `ProcessBackend`, and what `--resume` reuses.

`compiler.runtime.children.run_child` decides retries, attempt keys and the timeout, as it does
against a server; `ProcessChildRuns` only creates, watches and stops the runs here. Under
`--resume`, the first attempt of a step whose run key has a successful record is answered by
that record instead of a new process, provided every step upstream of it was reused too (the
same point's run, for a step of the same scan; every point's, for a step that gathers): a child
downstream of one that ran again runs again, since its parent's side effects may differ.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import prefect
from prefect.engine.state import Running, Scheduled, State

from compiler.local.records import fixed_digest
from compiler.runtime.children import ChildRequest
from compiler.runtime.local import task_logger

if TYPE_CHECKING:
    from compiler.local.backend import ChildRun, ProcessBackend
    from compiler.local.records import ChildRecord
    from compiler.plan import Step

# How long past a step's timeout the wait still expects the supervisor's stop to end the child.
STOP_GRACE_S = 30.0


class ProcessChildRuns:
    """`compiler.runtime.children.ChildRuns` over a ProcessBackend."""

    def __init__(self, backend: ProcessBackend) -> None:
        self._backend = backend

    def version(self, request: ChildRequest) -> str | None:
        """The lock's digest of the child's source closure (checked against the sources before
        the run started), as `compiler.plan.step_keys` takes it."""
        step = self._backend.steps.get(request.step)
        return step.source_digest if step is not None else None

    def create(self, request: ChildRequest, key: str, idempotency_key: str) -> str:
        backend = self._backend
        known = backend.run_for_idempotency_key(idempotency_key)
        if known is not None:  # a retried task: the same run
            return known.run_id
        attempt = int(idempotency_key.rsplit("/", 1)[-1])
        record = reusable(backend, request, key) if attempt == 0 else None
        if record is not None:
            reused = backend.reuse_run(request, key, idempotency_key, record)
            if reused is not None:
                return reused.run_id
        upstream = upstream_ids(backend, request)
        step = backend.steps.get(request.step)
        fixed = fixed_digest(step, request.parameters) if step is not None else None

        def annotate(run: ChildRun) -> None:
            run.key, run.attempt, run.point, run.upstream, run.fixed = key, attempt, request.point, upstream, fixed

        run = backend.start(
            flow_name=request.flow_name,
            project_name=request.project_name,
            parameters=dict(request.parameters),
            context={},
            run_name=request.run_name or _run_name(prefect.context.get("flow_run_name"), request.flow_name),
            idempotency_key=idempotency_key,
            parent=None,
            task_name=f"run {request.step}",
            map_index=prefect.context.get("map_index"),
            labels=request.labels,
            annotate=annotate,
        )
        task_logger().info(f"Created local flow run {run.run_name or run.run_id!r} for step {request.step!r}")
        return run.run_id

    def state(self, run_id: str) -> State:
        run = self._backend.run(run_id)
        if run.done.is_set():
            return run.state()
        return Running("running locally") if run.process is not None else Scheduled("starting locally")

    def wait(self, run_id: str, timeout_s: float | None) -> State | None:
        """The supervisor stops a child at its step's timeout (Failed: `timed out after ...`);
        this wait gives up only if that did not end it soon after."""
        run = self._backend.run(run_id)
        if not run.done.wait(None if timeout_s is None else timeout_s + STOP_GRACE_S):
            return None
        return run.state()

    def cancel(self, run_id: str) -> None:
        run = self._backend.run(run_id)
        if run.process is not None:
            self._backend.supervisor.stop(run.process, "stopped: still running after its timeout")


def upstream_runs(backend: ProcessBackend, request: ChildRequest) -> dict[str, list[ChildRun]] | None:
    """Per step upstream of the request's: the latest run of each of its points (the same
    point only, for a step of the same scan); None when the request is no step of the plan."""
    step = backend.steps.get(request.step)
    if step is None:
        return None
    runs = [r for r in backend.runs if r.parent_run_id == backend.composite_run_id]
    found: dict[str, list[ChildRun]] = {}
    for parent in step.upstream:
        parent_runs = [r for r in runs if r.step.alias == parent]
        same_point = [r for r in parent_runs if request.point is not None and r.point == request.point]
        latest: dict[str, ChildRun] = {}
        for run in same_point or parent_runs:
            latest[_point_key(run.point)] = run  # creation order: a retry replaces its attempt
        found[parent] = list(latest.values())
    return found


def reusable(backend: ProcessBackend, request: ChildRequest, key: str) -> ChildRecord | None:
    """The recorded successful run under `key`, if every step upstream of this one was reused."""
    record = backend.reuse.find(request.step, key)
    if record is None:
        return None
    upstream = upstream_runs(backend, request)
    if upstream is None:
        return None
    for parent_runs in upstream.values():
        if not parent_runs or any(run.reused is None for run in parent_runs):
            return None
    return record


def upstream_ids(backend: ProcessBackend, request: ChildRequest) -> dict[str, list[str]]:
    """What a record keeps of the runs upstream: whose results this run was started from."""
    upstream = upstream_runs(backend, request) or {}
    return {parent: [run.record_id for run in runs] for parent, runs in upstream.items()}


def _point_key(point: dict[str, Any] | None) -> str:
    return json.dumps(point, sort_keys=True, default=repr)


def _run_name(current: str | None, flow_name: str) -> str | None:
    return f"{current}-{flow_name}" if current else None


# Source servers (compiler.local.forkclient): a child's source imported once, never too early --


def imports_after(backend: ProcessBackend, run: ChildRun) -> float | None:
    """When every run of the steps upstream of `run` had ended (perf_counter; 0.0 when none ran
    here): a source imported after that read what `run`'s own import would. None for a run a
    child started (its parent is running: nothing may have been imported for it)."""
    if run.parent_run_id != backend.composite_run_id:
        return None
    ended = 0.0
    for other in backend.runs:
        if other.parent_run_id != backend.composite_run_id or other.step.alias not in run.step.upstream:
            continue
        if other.reused is not None:
            continue  # it ran before this flowc run started
        if other.process is None or other.process.ended is None:
            return None
        ended = max(ended, other.process.ended)
    return ended


def prepare_sources(backend: ProcessBackend, run: ChildRun) -> None:
    """After `run` ended well: its source may be imported once for later children whose parents
    had all ended by then (the first child of a source always imports it itself); and a source
    of several children downstream of it (or of a scan's points), once their first child ended
    well, is imported once for them now that this parent has produced its data. A chain gets no
    server per step: one would serve one child, at the cost of a fork more."""
    process = run.process
    if run.parent_run_id != backend.composite_run_id or process is None or process.ended is None:
        return
    if not run.ok or process.exit_status != 0 or not run.step.source:
        return
    proven = backend.proven_sources
    proven.add(run.step.source)
    root = str(backend.root)
    backend.supervisor.prepare_source(run.step.source, root, run.step.flow_name, 0.0)
    downstream: dict[str, list[Step]] = {}
    for step in backend.plan.steps:
        if step.source in proven and run.step.alias in step.upstream:
            downstream.setdefault(step.source, []).append(step)
    for source, steps in downstream.items():
        if len(steps) > 1 or any(step.per_point for step in steps):
            backend.supervisor.prepare_source(source, root, steps[0].flow_name, process.ended)
