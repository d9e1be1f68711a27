"""`flowc run`: the generated flow under Prefect's engine here, every child in a process of its own.

The orchestrator is `generated/<name>/flow.py` exactly as committed (compiler.local.prepare),
run with `flow.run()` in flowc's process; only its three orchestration tasks talk to
`ProcessBackend`, which starts each child from the project's child interpreter through the
`Supervisor`. SIGINT and SIGTERM stop every child's process group and still print the summary
(exit 130 / 143); `--timeout` bounds the whole run, a step's `timeout:` one child. Every run
records its children in `.flowc/runs/<run-id>/record.json`; `--resume` reuses recorded successful
runs by their run keys (compiler.local.records, resume, childruns).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from compiler import console
from compiler.config import Project
from compiler.diagnostics import CompileError, format_diagnostics
from compiler.local.live import LiveProgress, live_line
from compiler.local.prepare import PreparedRun, RunSetupError, load_generated_flow, prepare_run
from compiler.local.resume import record_entries
from compiler.local.summary import (
    NOT_RUN,
    Progress,
    RunSummary,
    _results_db,
    _safe_url,
    print_summary,
    summarize_children,
)

if TYPE_CHECKING:
    from compiler.local.supervise import ForkServer, Spawner

    Launcher = ForkServer | Spawner

EXIT_BY_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


def run_command(
    project: Project,
    spec_path: Path,
    params: tuple[str, ...],
    as_json: bool,
    timeout_s: float | None = None,
    resume: bool = False,
) -> int:
    """`flowc run`: 0 when every flow succeeded, 1 when one failed or the run could not start,
    130 / 143 when interrupted. Usage errors in `-p` raise click.UsageError (2)."""
    from rich.console import Console

    from compiler.local.supervise import start_launcher

    # The child interpreter imports Prefect (most of a child's start) while this process checks
    # the spec and imports Prefect itself: not one after the other before the first child.
    launcher = start_launcher(project.python, Path.cwd())
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        prepared = prepare_run(project, spec_path, params)
    except CompileError as error:
        launcher.close()
        errors.print(format_diagnostics(error.diagnostics), markup=False)
        return 1
    except RunSetupError as error:
        launcher.close()
        errors.print(str(error), markup=False)
        return 1
    except BaseException:  # a usage error in -p, an interrupt
        launcher.close()
        raise
    # Progress, the live line and the summary are said to a person: stderr (nothing under -q on
    # success); stdout holds only --json's document.
    progress = console.rich_stderr()
    watched = LiveProgress(progress, prepared.plan)
    with live_line(watched):
        outcome = execute(
            prepared, watched, quiet_stdout=True, timeout_s=timeout_s, resume=resume, launcher=launcher
        )
    summary = outcome.summary
    if as_json:
        sys.stdout.write(json.dumps(summary.as_json(), indent=2, default=repr) + "\n")
        sys.stdout.flush()
    else:
        print_summary(progress if summary.ok else console.rich_stderr(silent_when_quiet=False), summary)
    if outcome.signal is not None:
        return EXIT_BY_SIGNAL.get(outcome.signal, 128 + int(outcome.signal))
    return 0 if summary.ok else 1


class Outcome:
    def __init__(self, summary: RunSummary, signal_number: int | None) -> None:
        self.summary = summary
        self.signal = signal_number


def new_run_id() -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"local-{stamp}-{uuid.uuid4().hex[:8]}"


def execute(
    prepared: PreparedRun,
    progress: Progress,
    quiet_stdout: bool = False,
    timeout_s: float | None = None,
    run_id: str | None = None,
    resume: bool = False,
    launcher: Launcher | None = None,
) -> Outcome:
    """Run the generated flow with Prefect's engine and the process backend; summarise it.

    With `resume`, children whose run key has a successful record are reused; when all of them
    can be, nothing is loaded or started (compiler.local.resume). `launcher`: the children's,
    already started (compiler.local.supervise.start_launcher); execute ends it.
    """
    from compiler.local.records import RecordIndex, load_index
    from compiler.local.resume import reuse_everything

    plan = prepared.plan
    project = prepared.project
    run_id = run_id or new_run_id()
    runs_dir = project.root / ".flowc" / "runs"
    index = load_index(runs_dir) if resume else RecordIndex()
    run_dir = runs_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume:
        everything = reuse_everything(prepared, index)
        if everything is not None:
            if launcher is not None:
                launcher.close()
            return _all_reused(prepared, progress, run_id, run_dir, everything)
    from compiler.local.supervise import OutputSink, Supervisor, describe_duration

    # The child interpreter starts importing Prefect while this process loads the orchestrator.
    supervisor = Supervisor(
        project.python, run_dir, Path.cwd(), OutputSink(_child_stream(progress)), launcher=launcher
    )
    received: list[int] = []
    stop_reason: list[str] = []

    def on_signal(signum: int, _: Any) -> None:
        if received:  # a second one: no more grace
            supervisor.kill_all()
            raise KeyboardInterrupt
        received.append(signum)
        reason = f"stopped: flowc run was interrupted ({signal.Signals(signum).name})"
        stop_reason.append(reason)
        threading.Thread(target=supervisor.stop_all, args=(reason,), daemon=True).start()

    def on_timeout() -> None:
        reason = f"timed out after {describe_duration(timeout_s or 0)} (flowc run --timeout)"
        stop_reason.append(reason)
        supervisor.stop_all(reason)

    previous = {sig: signal.signal(sig, on_signal) for sig in EXIT_BY_SIGNAL}
    timer = None
    if timeout_s is not None:
        timer = threading.Timer(timeout_s, on_timeout)
        timer.daemon = True
        timer.start()
    started_at = datetime.now(timezone.utc)
    started = time.perf_counter()
    state = None
    crash: BaseException | None = None
    backend = None
    flow = None
    try:
        from compiler.local.backend import ProcessBackend
        from compiler.local.engine import LocalFlowRunner

        flow = load_generated_flow(prepared)
        backend = ProcessBackend(
            plan, prepared.spec_display, supervisor, project.root, run_id, progress, reuse=index
        )
        progress.begin(prepared, run_id)
        if resume:
            progress.resuming(index, project.relative(runs_dir))
        with _prefect_logs_to_stderr(), (
            contextlib.redirect_stdout(sys.stderr) if quiet_stdout else contextlib.nullcontext()
        ):
            with backend.installed(flow):
                try:
                    state = flow.run(
                        parameters=dict(prepared.overrides),
                        run_on_schedule=False,
                        runner_cls=LocalFlowRunner,
                        context={
                            "project_name": plan.project_name,
                            "flow_run_id": run_id,
                            "flow_run_name": f"{plan.name}-local",
                        },
                    )
                except Exception as error:  # the engine itself failed; report it as the run's outcome
                    crash = error
                backend.join()
    except KeyboardInterrupt as error:
        crash = error
    except RunSetupError as error:
        crash = error
    finally:
        if timer is not None:
            timer.cancel()
        supervisor.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    duration = time.perf_counter() - started
    runs = backend.runs if backend is not None else []
    if backend is not None:
        _write_record(prepared, run_id, run_dir, started_at, record_entries(backend, project.root))
        if resume and len(index) and runs and not any(run.reused is not None for run in runs):
            progress.nothing_reused()
    children = summarize_children(plan, flow, state, runs, progress) if flow is not None else []
    for child in children:
        if child.log is not None:
            child.log = project.relative(Path(child.log))
        if child.state == NOT_RUN:
            if stop_reason:
                child.reason = f"{child.reason}; {stop_reason[0]}" if child.reason else stop_reason[0]
            progress.not_run(child)
    ok = state is not None and state.is_successful() and all(c.ok for c in children) and not stop_reason
    if stop_reason:
        message = stop_reason[0]
    elif crash is not None:
        message = f"{type(crash).__name__}: {crash}"
    else:
        message = state.message if state is not None else None
    summary = RunSummary(
        run_id=run_id,
        run_dir=project.relative(run_dir),
        spec=prepared.spec_display,
        flow=plan.name,
        flow_file=prepared.flow_display,
        flow_file_sha256=prepared.flow_sha256,
        results_db=_safe_url(_results_db()),
        state=("Failed" if stop_reason and state is not None else type(state).__name__) if state is not None else "Crashed",
        ok=ok,
        started_at=started_at.isoformat(),
        duration_s=duration,
        message=message,
        parameters=prepared.parameters,
        children=children,
    )
    return Outcome(summary, received[0] if received else None)


def _child_stream(progress: Progress) -> IO[bytes] | None:
    """Where children's output goes: the live line's choice (compiler.local.live), else stderr."""
    chooser = getattr(progress, "child_stream", None)
    return chooser() if chooser is not None else None


def _write_record(prepared: PreparedRun, run_id: str, run_dir: Path, started_at: datetime, children: list[Any]) -> None:
    from compiler.local.records import write_record

    write_record(
        run_dir,
        run_id=run_id,
        spec=prepared.spec_display,
        flow=prepared.plan.name,
        started_at=started_at.isoformat(),
        children=children,
    )


def _all_reused(prepared: PreparedRun, progress: Progress, run_id: str, run_dir: Path, reused: list[Any]) -> Outcome:
    """`--resume` when every child has a successful record: nothing starts, the records answer."""
    from compiler.local.resume import reused_summary

    plan, project = prepared.plan, prepared.project
    started_at = datetime.now(timezone.utc)
    started = time.perf_counter()
    progress.begin(prepared, run_id)
    children = [reused_summary(item) for item in reused]
    for item in reused:
        progress.reused_line(item.step.alias, item.record)
    _write_record(prepared, run_id, run_dir, started_at, [{**item.record.as_json(), "step": item.step.alias} for item in reused])
    summary = RunSummary(
        run_id=run_id,
        run_dir=project.relative(run_dir),
        spec=prepared.spec_display,
        flow=plan.name,
        flow_file=prepared.flow_display,
        flow_file_sha256=prepared.flow_sha256,
        results_db=_safe_url(_results_db()),
        state="Success",
        ok=True,
        started_at=started_at.isoformat(),
        duration_s=time.perf_counter() - started,
        message=f"all {len(children)} children reused from earlier runs (flowc run --resume)",
        parameters=prepared.parameters,
        children=children,
    )
    return Outcome(summary, None)


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
