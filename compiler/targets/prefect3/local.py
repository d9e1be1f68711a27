"""`flowc run` of a prefect3 spec: a private Prefect server and worker that flowc starts and stops.

No server needs to be configured: flowc starts one from the Prefect 3 interpreter (SQLite in a
scratch directory under .flowc/, a process work pool, a worker polling every second), deploys the
children from their sources and the composite from generated/<name>/ as committed, runs it with
the `-p` values, reads every child's state and persisted results back, and stops it all. What
runs is what a real server runs: the same flow.py, run_deployment, worker and result storage.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from compiler.config import Project
from compiler.diagnostics import CompileError, format_diagnostics
from compiler.targets.prefect3.capture import interpreter_missing

FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
POOL = "flowc"


class LocalRunError(Exception):
    """The run could not start; the message says why."""


def unsupported_options(project: Project, spec_path: Path, *, resume: bool, timeout: str | None) -> str | None:
    """The located refusal of `flowc run` options a prefect3 local run has no form of, or None.

    Each run starts a private server in a new scratch directory and its children's keys are
    scoped to the new composite flow run, so nothing of an earlier run can be reused (--resume),
    and the run is bounded by the server's own states, not by flowc (--timeout). `--fresh` is
    what every prefect3 run does, so it is accepted.
    """
    given = [option for option, on in (("--resume", resume), ("--timeout", timeout is not None)) if on]
    if not given:
        return None
    from compiler.diagnostics import Diagnostic
    from compiler.sourcemap import load_yaml

    display = project.relative(spec_path)
    try:
        data, where = load_yaml(spec_path.read_text(encoding="utf-8"), display)
    except CompileError:
        data, where = None, None
    if isinstance(data, dict) and "target" in data and where is not None:
        located = where.at(("target",), "", key=True)
        origin = "its `target: prefect3`"
    else:
        located = Diagnostic(display, 1, 1, "")
        origin = "[tool.flowc] target = \"prefect3\" in pyproject.toml"
    reasons = {
        "--resume": "--resume is not available for prefect3 specs (" + origin + "): a local prefect3 run "
        "starts a private Prefect server each time and keeps no run records, so every child runs "
        "(as with --fresh); on a server, retrying the composite's flow run reuses the children that "
        "finished (idempotency keys)",
        "--timeout": "--timeout is not available for prefect3 specs (" + origin + "); give the steps "
        "`timeout:` in the spec (each child run is cancelled after it)",
    }
    return "\n".join(
        Diagnostic(located.path, located.line, located.col, reasons[option]).format() for option in given
    )


def run_command(project: Project, spec_path: Path, params: tuple[str, ...], as_json: bool) -> int:
    from compiler.compile import compile_plan, compile_spec
    from compiler.output import load_lock
    from compiler.overrides import parse_overrides

    display = project.relative(spec_path)
    text = spec_path.read_text(encoding="utf-8")
    try:
        lock = load_lock(project)
        plan = compile_plan(text, display, lock, project.target)
        files = compile_spec(text, display, lock, default_target=project.target)
    except CompileError as error:
        click.echo(format_diagnostics(error.diagnostics), err=True)
        return 1
    for relative, body in files.items():
        path = project.generated_dir / relative
        if not path.is_file() or path.read_text(encoding="utf-8") != body:
            click.echo(f"{project.relative(path)} is out of date; run `flowc generate`", err=True)
            return 1
    overrides = parse_overrides(params, plan)
    python = project.children_python("prefect3")
    if interpreter_missing(python):
        click.echo(f"no Prefect 3 interpreter {python!r}: set [tool.flowc.prefect3] python or FLOWC_PREFECT3_PYTHON", err=True)
        return 1
    started = time.monotonic()
    try:
        summary = _run(project, plan, overrides, python)
    except LocalRunError as error:
        click.echo(f"flowc run: {error}", err=True)
        return 1
    summary["duration_s"] = round(time.monotonic() - started, 3)
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2, default=repr) + "\n")
    else:
        for child in summary["children"]:
            mark = "✔" if child["state"] == "COMPLETED" else "✘"
            click.echo(f"{mark} {child['alias']:<20} {child['state']:<10} {child['deployment']}")
        click.echo(f"{plan.name}: {summary['state']} in {summary['duration_s']:.1f}s")
    return 0 if summary["ok"] else 1


def _run(project: Project, plan: Any, overrides: dict[str, Any], python: str) -> dict[str, Any]:
    from compiler.targets.prefect3.render import deployment_name, entrypoint
    from compiler.targets.prefect3.server import PrefectServer

    scratch_root = project.root / ".flowc" / "prefect3"
    scratch_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="run-", dir=scratch_root))
    server = PrefectServer(python, scratch)
    server.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project.root), os.environ.get("PYTHONPATH")]))
    server.env["FLOWC_RESULTS_DB"] = os.environ.get("FLOWC_RESULTS_DB") or f"sqlite:///{project.root / '.flowc' / 'results.db'}"
    requests = []
    seen = set()
    for step in plan.steps:
        name = deployment_name(step)
        if name in seen:
            continue
        seen.add(name)
        target, _, attribute = (step.source or "").rpartition(":")
        file = _source_file(project.root, target) if target else None
        if file is None:
            raise LocalRunError(f"step {step.alias!r} has no source file to deploy its child from")
        relative = file.resolve().relative_to(project.root.resolve()).as_posix()
        flow_name, _, deployment = name.partition("/")
        requests.append(_request(flow_name, deployment, f"{relative}:{attribute}", project.root))
    requests.append(_request(plan.name, plan.name, entrypoint(plan), project.generated_dir / plan.name))
    _progress(f"starting a private Prefect server and worker ({python})")
    try:
        server.start(pool=POOL)
        _progress(f"deploying {len(requests) - 1} child flow(s) and {plan.name}")
        server.deploy(*requests)
        found = server.api("GET", f"/deployments/name/{plan.name}/{plan.name}")
        body = {"parameters": {"parameters": overrides}} if overrides else {}
        flow_run = server.api("POST", f"/deployments/{found['id']}/create_flow_run", body)
        _progress(f"running {plan.name} (flow run {flow_run['id']})")
        while True:
            state = server.api("GET", f"/flow_runs/{flow_run['id']}")["state"]
            if state and state["type"] in FINAL:
                break
            time.sleep(0.5)
        described = server.probe(flow_run["id"])
    except RuntimeError as error:
        raise LocalRunError(f"{error} (logs: {project.relative(scratch)})") from None
    finally:
        server.stop()
    children = []
    for child in described["children"]:
        children.append({"alias": child_alias(plan.name, child), **child})
    return {
        "state": described["state"],
        "ok": described["state"] == "COMPLETED",
        "message": described["message"],
        "flow_run_id": flow_run["id"],
        "parameters": overrides,
        "children": children,
        "logs": project.relative(scratch),
    }


def child_alias(composite: str, child: dict[str, Any]) -> str | None:
    """The step a child run belongs to, from its run name: `<composite>.<alias>`, or a scan
    point's own name (`<alias>[param=value, ...]`), which is shown whole."""
    name = child.get("name") or ""
    if name.startswith(composite + "."):
        return name[len(composite) + 1 :]
    return name or child.get("deployment")


def _source_file(root: Path, target: str) -> Path | None:
    """The file of a source's `path.py` or dotted module, inside the project, found without
    importing anything (the worker imports it, from the project root on its path)."""
    if target.endswith(".py"):
        candidates = [root / target]
    else:
        base = root.joinpath(*target.split("."))
        candidates = [base.with_suffix(".py"), base / "__init__.py"]
    return next((path for path in candidates if path.is_file()), None)


def _request(flow_name: str, name: str, entrypoint: str, directory: Path) -> dict[str, Any]:
    return {
        "flow_name": flow_name,
        "name": name,
        "entrypoint": entrypoint,
        "local_directory": str(directory.resolve()),
        "image_directory": "/opt/flowc",
        "work_pool": POOL,
        "version": "flowc-run",
    }


def _progress(text: str) -> None:
    click.echo(text, err=True)
