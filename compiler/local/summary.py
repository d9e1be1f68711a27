"""What `flowc run` shows: progress lines as children start and end, the summary table, `--json`.

Values in summaries are bounded (compiler.runtime.child.bounded): one larger than 64 KiB is shown
by type, size and sha256, so a 50 MB result keeps `--json` small.
"""

from __future__ import annotations

import json
import math
import reprlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import prefect
    from rich.console import Console

    from compiler.local.backend import ChildRun
    from compiler.local.prepare import PreparedRun
    from compiler.plan import Plan, Step

NOT_RUN = "not run"


@dataclass
class ChildSummary:
    """One step of the composition after the run: what it received and how it ended."""

    alias: str
    flow: str
    source: str | None
    state: str = NOT_RUN
    ok: bool = False
    run_id: str | None = None
    started_at: str | None = None
    duration_s: float | None = None
    message: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    mapped: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None  # why a step did not run
    log: str | None = None  # its output, under .flowc/runs/<run-id>/


@dataclass
class RunSummary:
    run_id: str
    run_dir: str
    spec: str
    flow: str
    flow_file: str
    flow_file_sha256: str
    results_db: str
    state: str
    ok: bool
    started_at: str
    duration_s: float
    message: str | None
    parameters: dict[str, Any]
    children: list[ChildSummary]

    def as_json(self) -> dict[str, Any]:
        from compiler.runtime.child import bounded

        return {
            "run_id": self.run_id,
            "run_dir": self.run_dir,
            "spec": self.spec,
            "flow": self.flow,
            "flow_file": self.flow_file,
            "flow_file_sha256": self.flow_file_sha256,
            "results_db": self.results_db,
            "state": self.state,
            "ok": self.ok,
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 4),
            "message": self.message,
            "parameters": _jsonable({name: bounded(value) for name, value in self.parameters.items()}),
            "children": [
                {
                    "alias": child.alias,
                    "flow": child.flow,
                    "source": child.source,
                    "state": child.state,
                    "ok": child.ok,
                    "run_id": child.run_id,
                    "started_at": child.started_at,
                    "duration_s": None if child.duration_s is None else round(child.duration_s, 4),
                    "message": child.message,
                    "reason": child.reason,
                    "parameters": _jsonable(child.parameters),
                    "mapped": _jsonable(child.mapped),
                    "results": _jsonable(child.results),
                    "log": child.log,
                }
                for child in self.children
            ],
        }


def summarize_children(
    plan: Plan,
    flow: prefect.Flow,
    state: Any,
    runs: list[ChildRun],
    progress: Progress,
) -> list[ChildSummary]:
    """One summary per step, in run order; nested runs (a child that composes) follow their parent."""
    by_alias: dict[str, list[ChildRun]] = {}
    for run in runs:
        by_alias.setdefault(progress.label(run), []).append(run)
    summaries: dict[str, ChildSummary] = {}
    ordered: list[ChildSummary] = []
    for step in plan.steps:
        child = ChildSummary(
            alias=step.alias, flow=f"{step.project_name}/{step.flow_name}", source=step.source
        )
        step_runs = by_alias.pop(step.alias, [])
        if step_runs:
            _fill_from_run(child, step_runs[-1], step)
        else:
            child.reason = _not_run_reason(step, summaries, flow, state)
        summaries[step.alias] = child
        ordered.append(child)
        for label in sorted(k for k in by_alias if k.startswith(f"{step.alias}/")):
            for run in by_alias.pop(label):
                nested = ChildSummary(alias=label, flow=f"{run.project_name}/{run.flow_name}", source=None)
                _fill_from_run(nested, run, None)
                ordered.append(nested)
    for label, leftover in sorted(by_alias.items()):
        for run in leftover:
            extra = ChildSummary(alias=label, flow=f"{run.project_name}/{run.flow_name}", source=None)
            _fill_from_run(extra, run, None)
            ordered.append(extra)
    return ordered


def _fill_from_run(child: ChildSummary, run: ChildRun, step: Step | None) -> None:
    child.run_id = run.run_id
    child.started_at = run.started_at.isoformat() if run.started_at else None
    child.duration_s = run.duration_s
    child.parameters = dict(run.parameters)
    child.log = run.process.log_path.as_posix() if run.process is not None else None
    if step is not None:
        child.mapped = {m.parameter: run.parameters.get(m.parameter) for m in step.inputs}
    if not run.done.is_set():
        child.state, child.message = "Running", "did not finish"
        return
    child.state = run.state_name or "Failed"
    child.ok = run.ok
    child.message = run.message if child.ok else (run.detail or run.message)
    child.results = run.results


def _not_run_reason(step: Step, done: Mapping[str, ChildSummary], flow: prefect.Flow, state: Any) -> str:
    """Why a step never started: a parent that failed or did not run, else the task that failed."""
    reasons = []
    for parent in step.upstream:
        summary = done.get(parent)
        if summary is None or summary.state == NOT_RUN:
            reasons.append(f"upstream {parent!r} was not run")
        elif not summary.ok:
            reasons.append(f"upstream {parent!r} failed")
    if reasons:
        return "; ".join(reasons)
    failed = _failed_tasks_upstream_of_step(step, flow, state)
    if failed:
        return "; ".join(failed)
    return "the composite run ended before it started"


def _failed_tasks_upstream_of_step(step: Step, flow: prefect.Flow, state: Any) -> list[str]:
    """The composite's own tasks (a loader, a result fetch) that failed on the way to this step."""
    from prefect.engine.state import TriggerFailed

    from compiler.runtime.local import orchestration_kind

    task_states = state.result if state is not None and isinstance(state.result, dict) else {}
    creates = [
        t
        for t in flow.tasks
        if orchestration_kind(t) == "create_flow_run" and _step_of_create(t, flow) == step.alias
    ]
    seen: set[Any] = set()
    pending = list(creates)
    causes = []
    while pending:
        task = pending.pop()
        for upstream in flow.upstream_tasks(task):
            if upstream in seen:
                continue
            seen.add(upstream)
            pending.append(upstream)
            task_state = task_states.get(upstream)
            if task_state is not None and task_state.is_failed() and not isinstance(task_state, TriggerFailed):
                causes.append(f"task {upstream.name!r} failed: {task_state.message}")
    return sorted(causes)


def _step_of_create(task: Any, flow: prefect.Flow) -> str | None:
    name = str(task.name)
    if name.startswith("run "):
        return name[len("run ") :]
    constants = flow.constants.get(task, {})
    return constants.get("flow_name")


# Output -----------------------------------------------------------------------------------------


class Progress:
    """Prints each child's start and end as it happens (called from the children's threads)."""

    def __init__(self, console: Console, plan: Plan) -> None:
        self.console = console
        self.plan = plan
        self._lock = threading.Lock()
        self._started = time.perf_counter()
        self._composite_run_id: str | None = None
        self._width = max((len(s.alias) for s in plan.steps), default=8)

    def begin(self, prepared: PreparedRun, run_id: str) -> None:
        self._composite_run_id = run_id
        self._started = time.perf_counter()
        steps = len(prepared.plan.steps)
        self.console.print(
            f"[bold]flowc run[/] {prepared.spec_display}: {prepared.flow_display} "
            f"(sha256 {prepared.flow_sha256[:12]}), {steps} child flow{'s' if steps != 1 else ''}, "
            f"results in {_safe_url(_results_db())}"
        )

    def label(self, run: ChildRun) -> str:
        """The step a child run belongs to: its alias (`outer/inner` for a nested run)."""
        return run.label

    def _line(self, mark: str, label: str, text: str) -> None:
        elapsed = time.perf_counter() - self._started
        with self._lock:
            self.console.print(f"{elapsed:7.2f}s  {mark} {label:<{self._width}}  {text}")

    def run_started(self, run: ChildRun) -> None:
        label = self.label(run)
        self._line("[cyan]▶[/]", label, f"started   {run.project_name}/{run.flow_name}")

    def run_finished(self, run: ChildRun) -> None:
        label = self.label(run)
        name = run.state_name or "?"
        took = f"in {run.duration_s:.2f}s" if run.duration_s is not None else ""
        if run.ok:
            self._line("[green]✔[/]", label, f"[green]{name}[/]   {took}")
        else:
            detail = _abbreviate_text(run.detail or run.message or name, 160)
            self._line("[red]✘[/]", label, f"[red]{name}[/]    {took}: {_escape(detail)}")

    def not_run(self, child: ChildSummary) -> None:
        self._line("[yellow]○[/]", child.alias, f"[yellow]{NOT_RUN}[/]   {_escape(child.reason or '')}")


def print_summary(console: Console, summary: RunSummary) -> None:
    """A table of the children, then why each one that did not succeed did not."""
    from rich.table import Table

    table = Table(title=f"{summary.flow} ({summary.spec})", title_justify="left", expand=False)
    table.add_column("child")
    table.add_column("flow")
    table.add_column("state")
    table.add_column("time", justify="right")
    table.add_column("received")
    for child in summary.children:
        colour = "green" if child.ok else ("yellow" if child.state == NOT_RUN else "red")
        received = "\n".join(f"{name}={_abbreviate(value)}" for name, value in child.mapped.items())
        table.add_row(
            child.alias,
            child.flow,
            f"[{colour}]{child.state}[/]",
            "" if child.duration_s is None else f"{child.duration_s:.2f}s",
            _escape(received or "-"),
        )
    console.print(table)
    for child in summary.children:
        if child.ok:
            continue
        detail = child.reason if child.state == NOT_RUN else child.message
        console.print(f"  {child.alias}: {child.state}: {_escape(_abbreviate_text(detail or '', 400))}")
    counts: dict[str, int] = {}
    for child in summary.children:
        key = "succeeded" if child.ok else (NOT_RUN if child.state == NOT_RUN else "failed")
        counts[key] = counts.get(key, 0) + 1
    tally = ", ".join(f"{counts[what]} {what}" for what in ("succeeded", "failed", NOT_RUN) if what in counts)
    colour = "green" if summary.ok else "red"
    console.print(f"[{colour}]{summary.flow}: {summary.state}[/] in {summary.duration_s:.2f}s ({tally})")


_REPR = reprlib.Repr()
_REPR.maxstring = 48
_REPR.maxother = 48
_REPR.maxdict = 4
_REPR.maxlist = 4
_REPR.maxlevel = 2


def _abbreviate(value: Any, width: int = 72) -> str:
    """A value as the summary shows it; file and db references by what they point at."""
    if isinstance(value, Mapping) and {"filename", "file_type_string", "filesystem_identifier"} <= set(value):
        name = str(value["filename"]).rsplit("/", 1)[-1]
        return _abbreviate_text(f"file …/{name} ({value['filesystem_identifier']})", width)
    if isinstance(value, Mapping) and isinstance(value.get("query"), Mapping) and "project_name" in value:
        query = ", ".join(f"{k}={str(v)[:12]}…" if len(str(v)) > 12 else f"{k}={v}" for k, v in value["query"].items())
        return _abbreviate_text(f"db result {value['project_name']}[{query}]", width)
    return _abbreviate_text(_REPR.repr(value), width)


def _abbreviate_text(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _jsonable(value: Any) -> Any:
    """Values as JSON sees them; what JSON cannot hold becomes its repr, and so do NaN and the
    infinities (`json.dumps` would write them as `NaN`/`Infinity`, which is not JSON)."""
    return _finite(json.loads(json.dumps(value, default=repr)))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, list):
        return [_finite(item) for item in value]
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    return value


def _results_db() -> str:
    from compiler.runtime.results import results_db_url

    return results_db_url()


def _safe_url(url: str) -> str:
    """A store URL without its password, fit for a terminal and a JSON report (replica-set URLs
    with several `host:port` included: the runtime's redaction never asks for a single port)."""
    from compiler.runtime.results import redacted_url

    return redacted_url(url)
