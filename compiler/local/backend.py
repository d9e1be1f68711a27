"""The local backend of `flowc run`: the orchestration tasks, each child in a process.

`ProcessBackend.installed(flow)` swaps, for one run, the run function of the orchestrator's
`run_child_flow` (what generated flows use), `create_flow_run`, `wait_for_flow_run` and
`get_task_run_result` copies (compiler.runtime.local):
- `run_child_flow` keeps its own logic (compiler.runtime.children: a new child run per retry,
  attempt-suffixed idempotency keys, the timeout) over `_ProcessChildRuns`; under `--resume`
  a first attempt whose run key has a successful record, and whose upstream steps were all
  reused too, is answered by that record (compiler.local.records), and nothing starts.
- `create_flow_run` finds the step (by project and name; a name alone when it is unique),
  writes the parameters beside the run's logs and starts the child through the `Supervisor`,
  returning a `local-<uuid>` run id at once, as a server does while an agent deploys the run.
- `wait_for_flow_run` blocks until the child's process ended; its state is the one the child
  reported, or Failed with why the process ended (`exited with status 7`, `killed by SIGSEGV`,
  `timed out after 2h`). With `raise_final_state=True` the task ends in that state.
- `get_task_run_result` loads the task's value through the Result the child reported (its own
  Result class and location), as a server run would.
A child that composes flows itself sends the same three requests (and StartFlowRun's) over its
private channel; they are answered here, so its children are supervised like every other.
"""

from __future__ import annotations

import base64
import functools
import json
import pickle
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

import prefect
from prefect.engine.signals import signal_from_state
from prefect.engine.state import State

from compiler.local.results import load_result
from compiler.local.supervise import ChildProcess, LaunchError, Supervisor
from compiler.runtime.child import bounded
from compiler.local.childruns import ProcessChildRuns, imports_after, prepare_sources, upstream_ids
from compiler.local.records import RecordIndex
from compiler.runtime.children import ChildRequest, child_request, run_child
from compiler.runtime.local import (
    LOCAL_RUN_PREFIX,
    ChildFlowNotFound,
    Swapped,
    check_flow_identifier,
    default_idempotency_key,
    restore,
    state_named,
    swap_orchestration,
    task_logger,
)

if TYPE_CHECKING:
    from compiler.local.records import ChildRecord
    from compiler.plan import Plan, Step


@dataclass
class ChildRun:
    """One child flow run of the composition: what started it, with what, and how it ended."""

    run_id: str
    label: str  # the step's alias; `outer/inner` for a run a child started
    step: Step
    run_name: str | None
    parameters: dict[str, Any]  # as summaries show them (bounded)
    parent_run_id: str | None
    task_name: str | None
    point_index: int | None = None  # a point of a scanned or for_each step: its place in the scan
    process: ChildProcess | None = None
    report: dict[str, Any] | None = None
    state_name: str | None = None
    message: str | None = None
    detail: str | None = None  # why it failed, in one line
    labels: list[str] | None = None  # as the run was created with them (None: the flow's own)
    key: str | None = None  # its run key (compiler.keys), when run_child_flow started it
    attempt: int = 0  # 0 for a step's first run, n for its n-th retry
    point: dict[str, Any] | None = None  # its scan point, if any
    report_file: str | None = None  # where the child writes its report
    upstream: dict[str, list[str]] = field(default_factory=dict)  # parent step -> its runs' ids
    fixed: str | None = None  # digest of its parameters not mapped from other steps
    reused: ChildRecord | None = None  # `--resume`: the earlier successful run standing in for it
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def project_name(self) -> str:
        return self.step.project_name

    @property
    def record_id(self) -> str:
        """The child run whose results this one carries: itself, or the one it reused."""
        return self.reused.child_run_id if self.reused is not None else self.run_id

    @property
    def flow_name(self) -> str:
        return self.step.flow_name

    @property
    def ok(self) -> bool:
        return self.state_name == "Success" or bool(self.report and self.report.get("successful") and not self.abnormal)

    @property
    def abnormal(self) -> str | None:
        return self.process.abnormal_end() if self.process is not None else None

    @property
    def started_at(self) -> datetime | None:
        return self.process.started_at if self.process is not None else None

    @property
    def duration_s(self) -> float | None:
        return self.process.duration_s if self.process is not None else None

    @property
    def results(self) -> dict[str, Any]:
        return dict((self.report or {}).get("results") or {})

    def state(self) -> State:
        return state_named(self.state_name or "Failed", self.message)


class RunListener(Protocol):
    """Told when a child run starts and ends (from other threads); must be thread-safe."""

    def run_started(self, run: ChildRun) -> None: ...

    def run_finished(self, run: ChildRun) -> None: ...


class ProcessBackend:
    """Child flow runs in processes of their own, behind Prefect's orchestration tasks."""

    def __init__(
        self,
        plan: Plan,
        spec_display: str,
        supervisor: Supervisor,
        root: Path,
        composite_run_id: str,
        listener: RunListener | None = None,
        reuse: RecordIndex | None = None,
    ) -> None:
        self.plan = plan
        self.reuse = reuse if reuse is not None else RecordIndex()  # `--resume`: the records
        self.spec_display = spec_display
        self.supervisor = supervisor
        self.root = root
        self.composite_run_id = composite_run_id
        self._listener = listener
        self._lock = threading.Lock()
        self._runs: dict[str, ChildRun] = {}
        self._by_idempotency_key: dict[str, str] = {}
        self._rpc_files = 0
        self.proven_sources: set[str] = set()  # a child of each ended well (compiler.local.childruns)

    @property
    def runs(self) -> list[ChildRun]:
        """Every child run started so far, in the order they were created."""
        with self._lock:
            return list(self._runs.values())

    @contextmanager
    def installed(self, flow: prefect.Flow) -> Iterator[int]:
        """Run `flow`'s orchestration tasks against this backend until the block ends."""
        swapped: Swapped = swap_orchestration(
            flow,
            {
                "run_child_flow": self.run_child_flow,
                "create_flow_run": self.create_flow_run,
                "wait_for_flow_run": self.wait_for_flow_run,
                "get_task_run_result": self.get_task_run_result,
            },
        )
        try:
            yield len(swapped)
        finally:
            restore(swapped)

    def join(self, timeout: float | None = None) -> None:
        """Wait for every child run started so far (a composite may end before its children)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for run in self.runs:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            run.done.wait(remaining)

    # Finding the step -------------------------------------------------------------------------

    def resolve(self, project_name: str, flow_name: str, task_name: str | None, nested: bool) -> Step:
        steps = self.plan.steps
        if not nested and task_name and task_name.startswith("run "):
            alias = task_name[len("run ") :]
            for step in steps:
                if step.alias == alias and step.flow_name == flow_name:
                    return step
        if project_name:
            found = [s for s in steps if (s.project_name, s.flow_name) == (project_name, flow_name)]
            if not found:
                raise ChildFlowNotFound(
                    f"{project_name}/{flow_name} is not a step of {self.spec_display}, so this run has no source for it"
                )
            return found[0]
        found = [s for s in steps if s.flow_name == flow_name]
        projects = sorted({s.project_name for s in found})
        if not found:
            raise ChildFlowNotFound(
                f"create_flow_run(flow_name={flow_name!r}) without a project_name: no step of "
                f"{self.spec_display} composes a flow named {flow_name!r}"
            )
        if len(projects) > 1:
            raise ChildFlowNotFound(
                f"create_flow_run(flow_name={flow_name!r}) without a project_name is ambiguous: "
                f"{self.spec_display} composes it from projects {', '.join(projects)}; pass project_name"
            )
        return found[0]

    # The orchestration tasks ------------------------------------------------------------------

    def run_child_flow(
        self,
        flow_name: str,
        project_name: str,
        parameters: dict | None = None,
        step: str | None = None,
        labels: list | None = None,
        retries: int = 0,
        retry_delay: float = 0.0,
        timeout: float | None = None,
        point: dict | None = None,
        run_name: str | None = None,
    ) -> str:
        """The generated flow's child task: its own retry and timeout logic, against this backend."""
        request = child_request(
            flow_name, project_name, parameters, step, labels, retries, retry_delay, timeout, point, run_name
        )
        return run_child(ProcessChildRuns(self), request)

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
        """Start the child in a process of its own; return its local run id."""
        check_flow_identifier(flow_id, flow_name)
        delay = None
        if isinstance(scheduled_start_time, timedelta):
            delay = scheduled_start_time.total_seconds()
        elif isinstance(scheduled_start_time, datetime):
            delay = scheduled_start_time.timestamp() - time.time()
        run = self.start(
            flow_name=flow_name or "",
            project_name=project_name or "",
            parameters=dict(parameters or {}),
            context=dict(context or {}),
            run_name=run_name or _run_name(prefect.context.get("flow_run_name"), flow_name or ""),
            idempotency_key=default_idempotency_key(idempotency_key),
            parent=None,
            task_name=prefect.context.get("task_name"),
            delay_s=delay,
            map_index=prefect.context.get("map_index"),
            labels=None if labels is None else [str(label) for label in labels],
        )
        task_logger().info(f"Created local flow run {run.run_name or run.run_id!r} for flow {run.flow_name!r}")
        return run.run_id

    def wait_for_flow_run(
        self,
        flow_run_id: str,
        stream_states: bool = True,
        stream_logs: bool = False,
        raise_final_state: bool = False,
        max_duration: timedelta = timedelta(hours=12),
    ) -> ChildRun:
        """Block until the child's process ended; then return its run, or end in its state."""
        run = self._run(flow_run_id)
        if not run.done.wait(timeout=max_duration.total_seconds()):
            raise RuntimeError(f"Flow run exceeded maximum duration of {max_duration.total_seconds()} seconds")
        state = run.state()
        if stream_states:
            task_logger().info(f"Flow {run.run_name or run.run_id!r}: Entered state <{type(state).__name__}>: {state.message}")
        if raise_final_state:
            raise signal_from_state(state)(message=f"{flow_run_id} finished in state {state}", result=run)
        return run

    def get_task_run_result(self, flow_run_id: str, task_slug: str, map_index: int = -1, poll_time: int = 5) -> Any:
        """The result of the child's task `task_slug`, read back from its Result location."""
        if not task_slug:
            raise ValueError("Required argument `task_slug` is empty")
        if prefect.context.get("flow_run_id") == flow_run_id:
            raise ValueError(
                "Given `flow_run_id` is the same as the currently running flow. The "
                "`get_task_run_result` task cannot be used to retrieve results from the "
                "flow run it belongs to."
            )
        return self.task_result(flow_run_id, task_slug, map_index)

    # Runs -------------------------------------------------------------------------------------

    def start(
        self,
        *,
        flow_name: str,
        project_name: str,
        parameters: dict[str, Any],
        context: dict[str, Any],
        run_name: str | None,
        idempotency_key: str | None,
        parent: ChildRun | None,
        task_name: str | None,
        delay_s: float | None = None,
        map_index: int | None = None,
        labels: list[str] | None = None,
        annotate: Callable[[ChildRun], None] | None = None,
    ) -> ChildRun:
        with self._lock:
            if idempotency_key and idempotency_key in self._by_idempotency_key:
                return self._runs[self._by_idempotency_key[idempotency_key]]  # a retried task: same run
        step = self.resolve(project_name, flow_name, task_name, nested=parent is not None)
        point_index = None
        if parent is None:
            named = task_name[len("run ") :] if task_name and task_name.startswith("run ") else None
            label = named if named == step.alias else (named or step.alias)
            if step.per_point and map_index is not None and label == step.alias:
                point_index = int(map_index)
                label = point_label(step.alias, run_name, point_index)
        else:
            label = f"{parent.label}/{flow_name}"
        run = ChildRun(
            run_id=f"{LOCAL_RUN_PREFIX}{uuid.uuid4()}",
            label=label,
            step=step,
            run_name=run_name,
            parameters={name: bounded(value) for name, value in parameters.items()},
            parent_run_id=parent.run_id if parent is not None else self.composite_run_id,
            task_name=task_name,
            point_index=point_index,
            labels=labels,
        )
        if annotate is not None:
            annotate(run)
        with self._lock:
            self._runs[run.run_id] = run
            if idempotency_key:
                self._by_idempotency_key[idempotency_key] = run.run_id
        if delay_s and delay_s > 0:
            timer = threading.Timer(delay_s, self._launch, (run, parameters, context))
            timer.daemon = True
            timer.start()
        else:
            self._launch(run, parameters, context)
        return run

    def _launch(self, run: ChildRun, parameters: dict[str, Any], context: dict[str, Any]) -> None:
        log_path = self.supervisor.log_path(run.label.replace(", ", ","))
        base = log_path.with_suffix("")
        run.report_file = f"{base}.report.json"
        parameters_file = Path(f"{base}.parameters.pickle")
        with parameters_file.open("wb") as handle:
            pickle.dump(parameters, handle, protocol=4)
        request = {
            "run_id": run.run_id,
            "run_name": run.run_name,
            "project_name": run.step.project_name,
            "flow_name": run.step.flow_name,
            "source": run.step.source,
            "root": str(self.root),
            "parameters_file": str(parameters_file),
            "report_file": run.report_file,
            "context": _jsonable_context(context),
        }
        ours, theirs = socket.socketpair()
        threading.Thread(target=self._serve_channel, args=(run, ours), name=f"flowc-channel-{run.label}", daemon=True).start()
        self._notify("run_started", run)
        try:
            run.process = self.supervisor.start(
                run.label,
                log_path,
                request,
                theirs.fileno(),
                run.step.timeout_s,
                lambda child: self._finished(run, request, child),
                imports_after=imports_after(self, run),
            )
        except LaunchError as error:
            run.state_name, run.message, run.detail = "Failed", str(error), str(error)
            run.done.set()
            self._notify("run_finished", run)
        finally:
            theirs.close()

    def _finished(self, run: ChildRun, request: dict[str, Any], process: ChildProcess) -> None:
        """The child's process ended and its output is read: take its report, or why it has none."""
        run.process = process  # (a quick child can end before `start` returned it)
        try:
            report_file = Path(request["report_file"])
            try:
                run.report = json.loads(report_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                run.report = None
            abnormal = run.abnormal
            if run.report is not None and abnormal is None:
                run.state_name = run.report.get("state") or "Failed"
                run.message = run.report.get("message")
                if not run.report.get("successful"):
                    run.detail = run.report.get("failure") or run.message or run.state_name
            else:
                run.state_name = "Failed"
                why = abnormal or "exited with status 0 before reporting a final state"
                if run.report is not None and run.report.get("failure"):
                    why = f"{why} (after: {run.report['failure']})"
                run.message = run.detail = why
            prepare_sources(self, run)
        finally:
            run.done.set()
            self._notify("run_finished", run)

    # Resuming ---------------------------------------------------------------------------------

    def reuse_run(self, request: ChildRequest, key: str, idempotency_key: str, record: ChildRecord) -> ChildRun | None:
        """Stand the recorded run in for this one: its report and results, nothing started."""
        report = record.report(self.root)
        if report is None or not report.get("successful"):
            return None  # its report is gone or unreadable: run it again
        step = self.steps[request.step]
        map_index = prefect.context.get("map_index")
        point_index = int(map_index) if step.per_point and map_index is not None else None
        run = ChildRun(
            run_id=f"{LOCAL_RUN_PREFIX}{uuid.uuid4()}",
            label=step.alias if point_index is None else point_label(step.alias, request.run_name, point_index),
            point_index=point_index,
            step=step,
            run_name=request.run_name,
            parameters={name: bounded(value) for name, value in request.parameters.items()},
            parent_run_id=self.composite_run_id,
            task_name=prefect.context.get("task_name"),
            report=report,
            state_name="Success",
            message=f"reused run {record.composite_run_id} of {record.started_clock}",
            labels=request.labels,
            key=key,
            point=request.point,
            report_file=record.report_file,
            upstream=upstream_ids(self, request),
            fixed=record.fixed,
            reused=record,
        )
        run.done.set()
        with self._lock:
            self._runs[run.run_id] = run
            self._by_idempotency_key[idempotency_key] = run.run_id
        self._notify("run_reused", run)
        return run

    @functools.cached_property
    def steps(self) -> dict[str, Step]:
        return {step.alias: step for step in self.plan.steps}

    def run_for_idempotency_key(self, idempotency_key: str) -> ChildRun | None:
        with self._lock:
            run_id = self._by_idempotency_key.get(idempotency_key)
            return None if run_id is None else self._runs[run_id]

    def run(self, flow_run_id: str) -> ChildRun:
        """The run `flow_run_id` of this composite (ValueError if it is none of its runs)."""
        return self._run(flow_run_id)

    def _run(self, flow_run_id: str) -> ChildRun:
        with self._lock:
            run = self._runs.get(flow_run_id)
        if run is None:
            raise ValueError(f"no local flow run {flow_run_id!r}: it was not created by this run")
        return run

    def task_result(self, flow_run_id: str, task_slug: str, map_index: int = -1) -> Any:
        run = self._run(flow_run_id)
        run.done.wait()
        described = f"task {task_slug!r} of flow run {run.run_name or run.run_id!r} ({run.flow_name})"
        report = run.report
        if report is None or run.abnormal:
            raise ValueError(f"{described} has no result: the child run {run.detail or 'did not report'}")
        entry = (report.get("tasks") or {}).get(task_slug)
        if entry is None:
            slugs = report.get("slugs") or []
            if task_slug not in slugs:
                raise ValueError(
                    f"flow {run.flow_name!r} has no task with slug {task_slug!r}; it has {', '.join(slugs) or 'none'}"
                )
            raise ValueError(f"{described} never ran; the flow run ended in state {run.state()}")
        if not entry["finished"]:
            raise ValueError(f"The task result cannot be loaded if it is not finished ({described}).")
        if entry["failed"]:
            raise ValueError(f"{described} failed, so it has no result: {entry['message']}")
        if entry["mapped"]:
            children = entry["map"] or []
            if map_index != -1:
                return load_result(children[map_index]["result"], f"{described}[{map_index}]")
            return [load_result(child["result"], f"{described}[{i}]") for i, child in enumerate(children)]
        return load_result(entry["result"], described)

    # Requests from children that compose flows ----------------------------------------------

    def _serve_channel(self, run: ChildRun, channel: socket.socket) -> None:
        send_lock = threading.Lock()

        def reply(message: dict[str, Any]) -> None:
            data = (json.dumps(message, default=repr) + "\n").encode("utf-8")
            with send_lock:
                try:
                    channel.sendall(data)
                except OSError:
                    pass

        def answer(request: dict[str, Any]) -> None:
            try:
                reply({"id": request.get("id"), **self._answer(run, request)})
            except Exception as error:  # the child's task fails with this message
                reply({"id": request.get("id"), "error": f"{type(error).__name__}: {error}"})

        with channel, channel.makefile("rb") as lines:
            for raw in lines:
                try:
                    request = json.loads(raw)
                except ValueError:
                    continue
                threading.Thread(target=answer, args=(request,), name=f"flowc-rpc-{run.label}", daemon=True).start()

    def _answer(self, run: ChildRun, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "create":
            parameters = pickle.loads(base64.b64decode(request.get("parameters") or ""))
            child = self.start(
                flow_name=str(request.get("flow_name") or ""),
                project_name=str(request.get("project_name") or ""),
                parameters=parameters,
                context=dict(request.get("context") or {}),
                run_name=request.get("run_name") or _run_name(run.run_name, str(request.get("flow_name") or "")),
                idempotency_key=request.get("idempotency_key"),
                parent=run,
                task_name=request.get("task_name"),
                delay_s=request.get("delay_s"),
            )
            return {"run_id": child.run_id}
        if op == "wait":
            child = self._run(str(request.get("run_id")))
            limit = request.get("max_duration_s")
            if not child.done.wait(timeout=limit):
                raise RuntimeError(f"Flow run exceeded maximum duration of {limit} seconds")
            return {"state": child.state_name, "message": child.message}
        if op == "result":
            value = self.task_result(str(request.get("run_id")), str(request.get("slug")), int(request.get("map_index", -1)))
            with self._lock:
                self._rpc_files += 1
                number = self._rpc_files
            path = self.supervisor.run_dir / f"rpc-{number}.pickle"
            with path.open("wb") as handle:
                pickle.dump(value, handle, protocol=4)
            return {"file": str(path)}
        raise ValueError(f"unknown request {op!r}")

    def _notify(self, event: str, run: ChildRun) -> None:
        if self._listener is None or not hasattr(self._listener, event):
            return
        try:
            getattr(self._listener, event)(run)
        except Exception:  # a broken display (a closed pipe) must not stop or hang the run
            pass


def point_label(alias: str, run_name: str | None, index: int) -> str:
    """How a point's run is shown and its log named: its run name (`impact[quad_k=0.1, drift_length=1.0]`,
    from the point's values), or `impact[3]` when the run was given no name of that step."""
    if run_name and run_name.startswith(f"{alias}["):
        return run_name
    return f"{alias}[{index}]"


def _run_name(current: str | None, flow_name: str) -> str | None:
    return f"{current}-{flow_name}" if current else None


def _jsonable_context(context: dict[str, Any]) -> dict[str, Any]:
    """The extra context a create_flow_run passes, as far as JSON carries it to the child."""
    return json.loads(json.dumps(context, default=repr))
