"""`flowc run --resume`: what a run records of its children, and the run that starts nothing.

Reuse is decided per child run as the composite runs (compiler.local.childruns): the run key
that `run_child_flow` computes from the values it really received. When every child can be
reused, `reuse_everything` finds that out from the records alone, before Prefect or the flow is
loaded, so a resumed run of an unchanged 500-step pipeline starts nothing and imports no Prefect:
a root step's key is computed from the composite parameters (as `compiler.plan.step_keys`
does); a step that maps values is reused when a record of it was started from exactly the
recorded runs chosen for its parents (the values it received are theirs: results of finished
runs do not change) with the same unmapped parameters and child version. Anything else (a
scan, a step without such a record) takes the engine path, which decides the same way run by run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compiler.keys import child_identity, run_key
from compiler.local.records import ChildRecord, RecordIndex, fixed_digest

if TYPE_CHECKING:
    from compiler.local.backend import ChildRun, ProcessBackend
    from compiler.local.prepare import PreparedRun
    from compiler.local.summary import ChildSummary
    from compiler.plan import Step


def record_entries(backend: ProcessBackend, root: Path) -> list[dict[str, Any]]:
    """One entry per child run `run_child_flow` made (or reused) in this composite run."""
    entries = []
    for run in backend.runs:
        if run.key is None or run.parent_run_id != backend.composite_run_id:
            continue
        entries.append(_entry(run, backend.composite_run_id, root))
    return entries


def _entry(run: ChildRun, composite_run_id: str, root: Path) -> dict[str, Any]:
    from compiler.local.summary import _jsonable

    if run.reused is not None:
        # The original run (a resumed resume finds it), as this step used it, from these parents.
        return {**run.reused.as_json(), "step": run.step.alias, "upstream": run.upstream}
    report_file = Path(run.report_file) if run.report_file else None
    if report_file is not None:
        try:
            report_file = report_file.resolve().relative_to(root.resolve())
        except ValueError:
            pass
    return {
        "key": run.key,
        "step": run.step.alias,
        "flow": f"{run.step.project_name}/{run.step.flow_name}",
        "version": run.step.source_digest,
        "state": "Success" if run.ok else (run.state_name or "Failed"),
        "composite_run_id": composite_run_id,
        "child_run_id": run.run_id,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "report_file": report_file.as_posix() if report_file is not None else None,
        "fixed": run.fixed,
        "point": run.point,
        "attempt": run.attempt,
        "upstream": run.upstream,
        "parameters": _jsonable(run.parameters),
        "labels": run.labels,
    }


@dataclass(frozen=True)
class Reused:
    """A step answered by a record in a run that starts nothing."""

    step: Step
    record: ChildRecord
    report: dict[str, Any]


def reuse_everything(prepared: PreparedRun, index: RecordIndex) -> list[Reused] | None:
    """Every step's reusable record, when each step has one; else None (run the engine)."""
    plan = prepared.plan
    if not len(index) or any(step.per_point for step in plan.steps):
        return None
    composite = prepared.parameters
    chosen: dict[str, Reused] = {}
    for step in plan.steps:
        values = {p.variable: composite[p.name] for p in step.parameters}
        fixed = {name: values[variable] for name, variable in step.arguments if variable in values}
        if step.upstream:
            wanted = {parent: [chosen[parent].record.child_run_id] for parent in step.upstream}
            digest = fixed_digest(step, fixed)
            candidates = [
                r
                for r in index.by_step.get(step.alias, [])
                if r.upstream == wanted and r.fixed == digest and r.point is None
            ]
        else:
            key = run_key(child_identity(step.project_name, step.flow_name, step.source_digest), fixed)
            found = index.find(step.alias, key)
            candidates = [found] if found is not None else []
        flow = f"{step.project_name}/{step.flow_name}"
        record = next((r for r in candidates if r.flow == flow and r.version == step.source_digest), None)
        report = record.report(prepared.project.root) if record is not None else None
        if record is None or report is None or not report.get("successful"):
            return None
        chosen[step.alias] = Reused(step, record, report)
    return [chosen[step.alias] for step in plan.steps]


def reused_summary(item: Reused) -> ChildSummary:
    """The summary of a step answered by its record."""
    from compiler.local.summary import ChildSummary

    step, record = item.step, item.record
    return ChildSummary(
        alias=step.alias,
        flow=f"{step.project_name}/{step.flow_name}",
        source=step.source,
        state="Success",
        ok=True,
        run_id=record.child_run_id,
        message=f"reused run {record.composite_run_id} of {record.started_clock}",
        parameters=dict(record.parameters),
        mapped={m.parameter: record.parameters.get(m.parameter) for m in step.inputs},
        results=dict(item.report.get("results") or {}),
        labels=record.labels,
        key=record.key,
        attempts=0,
        reused=record.reused_json(),
    )
