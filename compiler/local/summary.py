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

from compiler.local.points import FAILURES_SHOWN, LABEL_WIDTH, folded_row, point_label_width, short_label, table_rows

if TYPE_CHECKING:
    import prefect
    from rich.console import Console

    from compiler.local.backend import ChildRun
    from compiler.local.prepare import PreparedRun
    from compiler.local.records import ChildRecord, RecordIndex
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
    cause: str | None = None  # a not-run point's loader failure (its own or its upstream point's)
    log: str | None = None  # its output, under .flowc/runs/<run-id>/
    run_name: str | None = None
    # A point of a scanned or for_each step: its values and place in the scan, and how it is shown
    # (`impact[quad_k=0.1, drift_length=1.0]`); `point_of` is that step for its nested runs too.
    point: dict[str, Any] | None = None
    point_index: int | None = None
    label: str = ""
    point_of: str | None = None

    def __post_init__(self) -> None:
        self.label = self.label or self.alias

    @property
    def not_run(self) -> bool:
        return self.state == NOT_RUN
    labels: list[str] | None = None  # the child run's labels (None: the child flow's own)
    key: str | None = None  # its run key (compiler.keys)
    attempts: int = 0  # child runs started for it (1 + the retries used; 0 when reused)
    reused: dict[str, Any] | None = None  # `--resume`: {run_id, child_run_id, started_at} it reused


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
                    "label": child.label,
                    "run_name": child.run_name,
                    "point": _jsonable(child.point),
                    "point_index": child.point_index,
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
                    "labels": child.labels,
                    "key": child.key,
                    "attempts": child.attempts,
                    "reused": child.reused,
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
    """One summary per step (per point of a scanned or for_each step, in point order), in run
    order; the runs a child started (it composes flows itself) follow it."""
    from compiler.local import points as scans

    run_ids = {run.run_id for run in runs}
    started_by: dict[str, list[ChildRun]] = {}
    by_step: dict[str, list[ChildRun]] = {}
    for run in runs:
        if run.parent_run_id in run_ids:
            started_by.setdefault(run.parent_run_id or "", []).append(run)
        else:
            by_step.setdefault(run.step.alias if run.point_index is not None else run.label, []).append(run)
    summaries: dict[str, ChildSummary] = {}
    per_point: dict[str, list[ChildSummary]] = {}
    ordered: list[ChildSummary] = []
    for step in plan.steps:
        step_runs = by_step.pop(step.alias, [])
        points = scans.run_points(plan, step, flow, state) if step.per_point else None
        if points is not None:
            children = _point_summaries(plan, step, points, step_runs, per_point, summaries, flow, state)
            for child, run in children:
                ordered.append(child)
                if run is not None:
                    ordered.extend(_started_by(run, started_by, point_of=step.alias))
            per_point[step.alias] = [child for child, _ in children]
            summaries[step.alias] = _whole_step(step, per_point[step.alias])
            continue
        child = _new_summary(step)
        run = step_runs[-1] if step_runs else None
        if run is not None:
            _fill_from_run(child, run, step)
            child.attempts = 0 if run.reused is not None else sum(1 for r in step_runs if r.reused is None)
        elif step.per_point:
            child.reason = scans.points_failure(plan, step, flow, state)
            per_point[step.alias] = []
        else:
            gathered = [scans.gathered_reason(p, per_point[p]) for p in step.upstream if p in per_point]
            gathered += scans.loader_failures(plan, step, flow, state, per_point)
            child.reason = "; ".join(r for r in gathered if r) or _not_run_reason(step, summaries, flow, state)
        summaries[step.alias] = child
        ordered.append(child)
        if run is not None:
            ordered.extend(_started_by(run, started_by))
    for label, leftover in sorted(by_step.items()):
        for run in leftover:
            extra = ChildSummary(alias=label, flow=f"{run.project_name}/{run.flow_name}", source=None)
            _fill_from_run(extra, run, None)
            ordered.append(extra)
            ordered.extend(_started_by(run, started_by))
    return ordered


def _new_summary(step: Step) -> ChildSummary:
    return ChildSummary(alias=step.alias, flow=f"{step.project_name}/{step.flow_name}", source=step.source)


def _point_summaries(
    plan: Plan,
    step: Step,
    points: list[dict[str, Any]],
    runs: list[ChildRun],
    per_point: dict[str, list[ChildSummary]],
    summaries: Mapping[str, ChildSummary],
    flow: prefect.Flow,
    state: Any,
) -> list[tuple[ChildSummary, ChildRun | None]]:
    """One summary per point of `step`, in point order, with its run (the last, after retries);
    a point that never started says why (the same point upstream, else the step's reason)."""
    from compiler.local import points as scans
    from compiler.local.backend import point_label
    from compiler.runtime.scans import point_name

    by_index = {run.point_index: run for run in runs}
    children = []
    for index, point in enumerate(points):
        child = _new_summary(step)
        child.point, child.point_index, child.point_of = point, index, step.alias
        run = by_index.get(index)
        if run is not None:
            _fill_from_run(child, run, step)
            child.label = run.label
            if run.reused is None:
                child.attempts = sum(1 for r in runs if r.point_index == index and r.reused is None)
        else:
            child.run_name = point_name(step.alias, point)
            child.label = point_label(step.alias, child.run_name, index)
            child.reason = scans.point_not_run_reason(plan, step, index, per_point)
            child.cause = scans.upstream_cause(plan, step, index, per_point)
            if child.reason is None:
                child.cause = "; ".join(scans.loader_failures(plan, step, flow, state, per_point, index)) or None
                other = {a: s for a, s in summaries.items() if plan.step(a).lineage != step.lineage}
                child.reason = child.cause or _not_run_reason(step, other, flow, state)
        children.append((child, run))
    return children


def _whole_step(step: Step, points: list[ChildSummary]) -> ChildSummary:
    """A per-point step as the steps after it see it: ok only when every point is."""
    whole = _new_summary(step)
    failed = any(not c.ok and not c.not_run for c in points)
    not_run = any(c.not_run for c in points)
    whole.ok = bool(points) and not failed and not not_run
    whole.state = "Failed" if failed else NOT_RUN if not_run or not points else "Success"
    return whole


def _started_by(run: ChildRun, started_by: dict[str, list[ChildRun]], point_of: str | None = None) -> list[ChildSummary]:
    """The runs `run` started, and theirs, depth first, siblings by label."""
    found = []
    for nested_run in sorted(started_by.get(run.run_id, []), key=lambda r: r.label):
        nested = ChildSummary(alias=nested_run.label, flow=f"{nested_run.project_name}/{nested_run.flow_name}", source=None)
        nested.point_of = point_of
        _fill_from_run(nested, nested_run, None)
        found.append(nested)
        found.extend(_started_by(nested_run, started_by, point_of))
    return found


def _fill_from_run(child: ChildSummary, run: ChildRun, step: Step | None) -> None:
    child.run_id = run.run_id
    child.labels, child.key, child.attempts = run.labels, run.key, 1
    if run.reused is not None:
        child.attempts, child.reused = 0, run.reused.reused_json()
    child.started_at = run.started_at.isoformat() if run.started_at else None
    child.duration_s = run.duration_s
    child.run_name = run.run_name
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
        if parent not in done:
            continue  # a parent of the same scan, whose point did run (compiler.local.points)
        summary = done[parent]
        if summary.state == NOT_RUN:
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
        if orchestration_kind(t) in ("run_child_flow", "create_flow_run") and _step_of_create(t, flow) == step.alias
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
        self._width = max(self._width, min(LABEL_WIDTH, point_label_width(plan)))

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
        """The step a child run belongs to: its alias (`outer/inner` for a nested run); for a point
        of a scanned or for_each step its run's name (`impact[quad_k=0.1, drift_length=1.0]`)."""
        return short_label(run.label, run.step.alias, run.point_index)

    def _line(self, mark: str, label: str, text: str) -> None:
        elapsed = time.perf_counter() - self._started
        with self._lock:
            self.console.print(f"{elapsed:7.2f}s  {mark} {_escape(label):<{self._width}}  {text}")

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

    def resuming(self, index: RecordIndex, runs_dir: str) -> None:
        """`--resume`: what there is to reuse, said before anything runs."""
        if not len(index):
            self.console.print(
                f"resume: nothing to resume: no successful child run is recorded under {runs_dir}/; "
                "every child runs"
            )
            return
        self.console.print(
            f"resume: {len(index)} successful child run(s) recorded in {index.runs} run(s) under "
            f"{runs_dir}/; a child whose run key has one is reused"
        )

    def nothing_reused(self) -> None:
        self.console.print(
            "resume: no child's run key matched a recorded successful run (a changed source, "
            "parameter or upstream value changes the keys below it), so every child ran"
        )

    def run_reused(self, run: ChildRun) -> None:
        if run.reused is not None:
            self.reused_line(self.label(run), run.reused)

    def reused_line(self, label: str, record: ChildRecord) -> None:
        self._line("[blue]↺[/]", label, f"[blue]reused[/]    run {record.composite_run_id} of {record.started_clock}")

    def not_run(self, child: ChildSummary) -> None:
        label = short_label(child.label, child.alias, child.point_index)
        self._line("[yellow]○[/]", label, f"[yellow]{NOT_RUN}[/]   {_escape(child.reason or '')}")


def print_summary(console: Console, summary: RunSummary) -> None:
    """A table of the children (a step with many points as one row), then why each one that did
    not succeed did not (at most FAILURES_SHOWN per folded step)."""
    from rich.table import Table

    table = Table(title=f"{summary.flow} ({summary.spec})", title_justify="left", expand=False)
    table.add_column("child")
    table.add_column("flow")
    table.add_column("state")
    table.add_column("time", justify="right")
    table.add_column("received")
    rows = table_rows(summary.children)
    for folded, group in rows:
        if folded:
            table.add_row(*folded_row(folded, group))
            continue
        child = group[0]
        colour = "green" if child.ok else ("yellow" if child.not_run else "red")
        received = "\n".join(f"{name}={_abbreviate(value)}" for name, value in child.mapped.items())
        shown = child.state if child.reused is None else _reused_cell(child)
        table.add_row(
            _escape(child.label),
            child.flow,
            f"[{colour}]{_escape(shown)}[/]",
            "" if child.duration_s is None else f"{child.duration_s:.2f}s",
            _escape(received or "-"),
        )
    console.print(table)
    for folded, group in rows:
        unsuccessful = [c for c in group if not c.ok]
        for child in unsuccessful[: FAILURES_SHOWN if folded else None]:
            detail = child.reason if child.not_run else child.message
            console.print(f"  {_escape(child.label)}: {child.state}: {_escape(_abbreviate_text(detail or '', 400))}")
        if folded and len(unsuccessful) > FAILURES_SHOWN:
            console.print(f"  … and {len(unsuccessful) - FAILURES_SHOWN} more of {folded} did not succeed (--json lists each)")
    counts: dict[str, int] = {}
    for child in summary.children:
        key = "succeeded" if child.ok else (NOT_RUN if child.not_run else "failed")
        if child.reused is not None:
            key = "reused"
        counts[key] = counts.get(key, 0) + 1
    tally = ", ".join(
        f"{counts[what]} {what}" for what in ("succeeded", "reused", "failed", NOT_RUN) if what in counts
    )
    colour = "green" if summary.ok else "red"
    console.print(f"[{colour}]{summary.flow}: {summary.state}[/] in {summary.duration_s:.2f}s ({tally})")


def _reused_cell(child: ChildSummary) -> str:
    """`reused  run local-…569b36dd of 14:02`: the run whose directory under .flowc/runs/ has it."""
    run_id = str((child.reused or {}).get("run_id") or "")
    short = f"local-…{run_id[-8:]}" if run_id.startswith("local-") and len(run_id) > 20 else run_id
    clock = (child.message or "").rpartition(" of ")[2]
    return f"reused  run {short} of {clock}"


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
