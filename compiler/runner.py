"""`flowc run`: run a spec's generated flow on this machine, each child in-process from its source.

The file that runs is `generated/<name>/flow.py` exactly as it is on disk (and committed), after
checking that it is what `flowc generate` would write now: a stale file is refused, never
regenerated in memory, so what runs here is what a reviewer read and what a server registers.
Prefect's engine runs it (`flow.run`, the flow's own executor); only the three
orchestration tasks talk to `compiler.runtime.local.LocalBackend` instead of a server.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import os
import reprlib
import sys
import threading
import time
import types
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit


from compiler.config import Project
from compiler.diagnostics import CompileError, format_diagnostics
from compiler.lockfile import Lock
from compiler.overrides import parse_overrides, parse_value  # noqa: F401 - parse_value: the -p reader

if TYPE_CHECKING:
    import prefect
    from rich.console import Console

    from compiler.plan import Plan, Step
    from compiler.runtime.local import LocalFlowRun

NOT_RUN = "not run"


class RunSetupError(Exception):
    """Something that stops a run before anything starts; the message is one or more lines."""


@dataclass(frozen=True)
class PreparedRun:
    """Everything checked before the first child starts."""

    plan: Plan
    spec_display: str
    flow_path: Path
    flow_display: str
    flow_bytes: bytes
    overrides: dict[str, Any]
    parameters: dict[str, Any]  # every composite parameter, as the run will see it
    child_flows: dict[tuple[str, str], prefect.Flow]

    @property
    def flow_sha256(self) -> str:
        return hashlib.sha256(self.flow_bytes).hexdigest()


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


@dataclass
class RunSummary:
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
        return {
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
            "parameters": _jsonable(self.parameters),
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
                }
                for child in self.children
            ],
        }


# The command ------------------------------------------------------------------------------------


def run_command(project: Project, spec_path: Path, params: tuple[str, ...], as_json: bool) -> int:
    """`flowc run`: 0 when every flow succeeded, 1 when one failed or the run could not start.

    Malformed or unknown `-p` parameters, and missing required ones, raise click.UsageError (2).
    """
    from rich.console import Console

    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        prepared = prepare_run(project, spec_path, params)
    except CompileError as error:
        errors.print(format_diagnostics(error.diagnostics), markup=False)
        return 1
    except RunSetupError as error:
        errors.print(str(error), markup=False)
        return 1
    progress = Console(stderr=as_json, highlight=False, soft_wrap=True)
    try:
        summary = execute(prepared, Progress(progress, prepared.plan), quiet_stdout=as_json)
    except KeyboardInterrupt:
        errors.print("flowc run: interrupted; child flows still running were abandoned")
        return 130
    if as_json:
        sys.stdout.write(json.dumps(summary.as_json(), indent=2, default=repr) + "\n")
        sys.stdout.flush()
    else:
        print_summary(progress, summary)
    return 0 if summary.ok else 1


# Before anything runs ---------------------------------------------------------------------------


def prepare_run(project: Project, spec_path: Path, params: tuple[str, ...]) -> PreparedRun:
    """Check the spec, its generated file, the lock and the parameters; import the children."""
    from compiler.compile import compile_plan
    from compiler.lock import ensure_importable
    from compiler.output import load_lock

    spec_display = project.relative(spec_path)
    lock = load_lock(project)
    try:
        text = spec_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RunSetupError(f"{spec_display}:1:1: error: cannot read spec: {error}") from None
    plan = compile_plan(text, spec_display, lock)
    overrides = parse_overrides(params, plan)
    flow_path, flow_bytes = _current_flow_file(project, spec_path, plan, lock)
    ensure_importable(project.root)
    _check_lock_is_current(plan, lock, project)
    child_flows = _import_children(plan, spec_display)
    parameters = {p.name: p.default for p in plan.parameters}
    parameters.update(overrides)
    return PreparedRun(
        plan=plan,
        spec_display=spec_display,
        flow_path=flow_path,
        flow_display=project.relative(flow_path),
        flow_bytes=flow_bytes,
        overrides=overrides,
        parameters=parameters,
        child_flows=child_flows,
    )


def _current_flow_file(project: Project, spec_path: Path, plan: Plan, lock: Lock) -> tuple[Path, bytes]:
    """The generated flow.py's bytes, refused unless `flowc generate` would write them as they are."""
    from compiler.output import build_tree

    path = project.generated_dir / plan.name / "flow.py"
    display = project.relative(path)
    spec_display = project.relative(spec_path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RunSetupError(
            f"{display}: error: not generated yet; run `flowc generate {spec_display}` first"
        ) from None
    tree = build_tree(project, [spec_path], lock)
    if tree.diagnostics:
        raise CompileError(tree.diagnostics)
    key = f"{plan.name}/flow.py"
    expected = tree.rendered.get(key)
    if key not in tree.fresh and (expected is None or expected.encode("utf-8") != data):
        raise RunSetupError(
            f"{display}: error: out of date with {spec_display} or the lock; "
            f"`flowc run` runs the generated file as committed, so run `flowc generate {spec_display}` "
            "(and review the diff) first"
        )
    return path, data


def _check_lock_is_current(plan: Plan, lock: Lock, project: Project) -> None:
    """A child whose interface changed since the lock would be called with the wrong parameters."""
    from compiler.lock import drifted

    keys = {f"{step.project_name}/{step.flow_name}" for step in plan.steps}
    mine = Lock(path=lock.path, flows={k: v for k, v in lock.flows.items() if k in keys})
    drift = drifted(mine, project.root, project.python)
    problems = [f"{lock.path}: error: {error}" for error in drift.errors]
    if drift.lock is not None:
        for key in sorted(keys):
            if drift.lock.flows.get(key) != mine.flows.get(key):
                problems.append(
                    f"{lock.path}: error: the interface of {key} changed since the lock was written; "
                    "run `flowc lock` and `flowc generate`"
                )
    if problems:
        raise RunSetupError("\n".join(problems))


def _import_children(plan: Plan, spec_display: str) -> dict[tuple[str, str], prefect.Flow]:
    """Import every child flow from its source now, so a broken source stops the run before it starts."""
    import prefect

    flows: dict[tuple[str, str], prefect.Flow] = {}
    problems: list[str] = []
    for step in plan.steps:
        key = (step.project_name, step.flow_name)
        if key in flows:
            continue
        where = f"{spec_display}: error: step {step.alias!r} ({step.project_name}/{step.flow_name})"
        if not step.source:
            problems.append(
                f"{where} has no `source:`; a local run imports each child flow from its source "
                "(module:attribute)"
            )
            continue
        module_name, _, attribute = step.source.partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as error:  # a child module can fail in any way; report which and why
            problems.append(f"{where}: cannot import {module_name!r}: {type(error).__name__}: {error}")
            continue
        flow = getattr(module, attribute, None)
        if not isinstance(flow, prefect.Flow):
            problems.append(f"{where}: {step.source} is not a prefect.Flow")
        elif flow.name != step.flow_name:
            problems.append(f"{where}: {step.source} defines the flow {flow.name!r}, not {step.flow_name!r}")
        else:
            flows[key] = flow
    if problems:
        raise RunSetupError("\n".join(problems))
    return flows


def load_generated_flow(prepared: PreparedRun) -> prefect.Flow:
    """Execute exactly the bytes that were checked (no re-read, no bytecode cache in generated/)."""
    import prefect

    module = types.ModuleType(f"flowc_generated_{prepared.plan.name}")
    module.__file__ = str(prepared.flow_path)
    code = compile(prepared.flow_bytes, str(prepared.flow_path), "exec", dont_inherit=True)
    exec(code, module.__dict__)  # noqa: S102 - the generated file, checked byte for byte above
    flow = module.__dict__.get("flow")
    if not isinstance(flow, prefect.Flow):
        raise RunSetupError(f"{prepared.flow_display}: error: defines no module-level prefect.Flow `flow`")
    return flow


# Running ----------------------------------------------------------------------------------------


def execute(prepared: PreparedRun, progress: Progress, quiet_stdout: bool = False) -> RunSummary:
    """Run the generated flow with Prefect's engine and a local backend; summarise what happened."""
    from compiler.runtime.local import LocalBackend

    flow = load_generated_flow(prepared)
    plan = prepared.plan

    def resolve(project_name: str, flow_name: str) -> prefect.Flow:
        from compiler.runtime.local import ChildFlowNotFound

        found = prepared.child_flows.get((project_name, flow_name))
        if found is None:
            raise ChildFlowNotFound(
                f"{project_name}/{flow_name} is not a step of {prepared.spec_display}, so this run has no source for it"
            )
        return found

    backend = LocalBackend(resolve, progress)
    run_id = f"local-{uuid.uuid4()}"
    progress.begin(prepared, run_id)
    started_at = datetime.now(timezone.utc)
    started = time.perf_counter()
    state = None
    crash: BaseException | None = None
    with _prefect_logs_to_stderr(), (
        contextlib.redirect_stdout(sys.stderr) if quiet_stdout else contextlib.nullcontext()
    ):
        with backend.installed(flow):
            try:
                state = flow.run(
                    parameters=dict(prepared.overrides),
                    run_on_schedule=False,
                    context={
                        "project_name": plan.project_name,
                        "flow_run_id": run_id,
                        "flow_run_name": f"{plan.name}-local",
                    },
                )
            except Exception as error:  # the engine itself failed; report it as the run's outcome
                crash = error
    duration = time.perf_counter() - started
    children = summarize_children(plan, flow, state, backend.runs, progress)
    for child in children:
        if child.state == NOT_RUN:
            progress.not_run(child)
    ok = state is not None and state.is_successful() and all(c.ok for c in children)
    message = f"{type(crash).__name__}: {crash}" if crash else (state.message if state is not None else None)
    return RunSummary(
        spec=prepared.spec_display,
        flow=plan.name,
        flow_file=prepared.flow_display,
        flow_file_sha256=prepared.flow_sha256,
        results_db=_safe_url(_results_db()),
        state=type(state).__name__ if state is not None else "Crashed",
        ok=ok,
        started_at=started_at.isoformat(),
        duration_s=duration,
        message=message,
        parameters=prepared.parameters,
        children=children,
    )


def summarize_children(
    plan: Plan,
    flow: prefect.Flow,
    state: Any,
    runs: list[LocalFlowRun],
    progress: Progress,
) -> list[ChildSummary]:
    """One summary per step, in run order; nested runs (a child that composes) follow their parent."""
    by_alias: dict[str, list[LocalFlowRun]] = {}
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


def _fill_from_run(child: ChildSummary, run: LocalFlowRun, step: Step | None) -> None:
    from compiler.runtime.local import child_results, failure_detail

    child.run_id = run.run_id
    child.started_at = run.started_at.isoformat() if run.started_at else None
    child.duration_s = run.duration_s
    child.parameters = dict(run.parameters)
    if step is not None:
        child.mapped = {m.parameter: run.parameters.get(m.parameter) for m in step.inputs}
    if run.state is None:
        child.state, child.message = "Running", "did not finish"
        return
    child.state = type(run.state).__name__
    child.ok = run.state.is_successful()
    child.message = run.state.message if child.ok else failure_detail(run)
    child.results = dict(child_results(run))


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
        self._aliases = {step.alias for step in plan.steps}
        self._labels: dict[str, str] = {}
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

    def label(self, run: LocalFlowRun) -> str:
        """The step a child run belongs to: its alias (`outer/inner` for a nested run)."""
        with self._lock:
            known = self._labels.get(run.run_id)
            if known is not None:
                return known
            label = self._label_of(run)
            self._labels[run.run_id] = label
            return label

    def _label_of(self, run: LocalFlowRun) -> str:
        task_name = run.task_name or ""
        named = task_name[len("run ") :] if task_name.startswith("run ") else task_name
        if run.parent_run_id != self._composite_run_id:
            parent = self._labels.get(run.parent_run_id or "", "?")
            return f"{parent}/{named or run.flow_name}"
        if named in self._aliases:
            return named
        same_flow = [
            s.alias for s in self.plan.steps if (s.project_name, s.flow_name) == (run.project_name, run.flow_name)
        ]
        return same_flow[0] if len(same_flow) == 1 else (named or run.flow_name)

    def _line(self, mark: str, label: str, text: str) -> None:
        elapsed = time.perf_counter() - self._started
        with self._lock:
            self.console.print(f"{elapsed:7.2f}s  {mark} {label:<{self._width}}  {text}")

    def run_started(self, run: LocalFlowRun) -> None:
        label = self.label(run)
        self._line("[cyan]▶[/]", label, f"started   {run.project_name}/{run.flow_name}")

    def run_finished(self, run: LocalFlowRun) -> None:
        from compiler.runtime.local import failure_detail

        label = self.label(run)
        state = run.state
        name = type(state).__name__ if state is not None else "?"
        took = f"in {run.duration_s:.2f}s" if run.duration_s is not None else ""
        if state is not None and state.is_successful():
            self._line("[green]✔[/]", label, f"[green]{name}[/]   {took}")
        else:
            detail = _abbreviate_text(failure_detail(run), 160)
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
    tally = ", ".join(f"{n} {what}" for what, n in counts.items())
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
    """Values as JSON sees them; what JSON cannot hold becomes its repr."""
    return json.loads(json.dumps(value, default=repr))


def _results_db() -> str:
    from compiler.runtime.results import results_db_url

    return results_db_url()


def _safe_url(url: str) -> str:
    """A store URL without its password, fit for a terminal and a JSON report."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@contextlib.contextmanager
def _prefect_logs_to_stderr() -> Iterator[None]:
    """Prefect logs to stdout at INFO; keep stdout for flowc's output and show warnings only.

    `PREFECT__LOGGING__LEVEL`, when set, keeps its level (e.g. DEBUG to see every task run).
    """
    logger = logging.getLogger("prefect")
    level = logger.level
    streams = []
    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) is sys.stdout:
            streams.append(handler)
            handler.setStream(sys.stderr)
    if "PREFECT__LOGGING__LEVEL" not in os.environ:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
        for handler in streams:
            handler.setStream(sys.stdout)
