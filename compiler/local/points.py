"""Scans in `flowc run`'s report: the points a run computed, why a point did not run, and the
folded table rows of a large scan.

The points are the ones the run computed (the composite's `points of <alias>` task), so a run
given other lists (`-p impact-quad_k=[...]`) reports its own points. A point's child run is found
by its map index (ChildRun.point_index): the for_each steps map over the same points in the same
order, so index i of every step of a scan is the same point, whatever the point's values.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import prefect

    from compiler.local.summary import ChildSummary
    from compiler.plan import Plan, Step

FOLD_ABOVE = 8  # a step with more points than this is one row of the table (its states counted)
FAILURES_SHOWN = 10  # unsuccessful points listed under the table per folded step, then a count
LABEL_WIDTH = 44  # characters of a point's label on a progress line


def _points_task_state(plan: Plan, step: Step, flow: prefect.Flow | None, state: Any) -> tuple[str, Any]:
    root = plan.step(step.lineage or step.alias).alias
    task_states = state.result if state is not None and isinstance(state.result, dict) else {}
    for task in flow.tasks if flow is not None else ():
        if task.name == f"points of {root}":
            return root, task_states.get(task)
    return root, None


def run_points(plan: Plan, step: Step, flow: prefect.Flow | None, state: Any) -> list[dict[str, Any]] | None:
    """The points this run computed for `step`'s scan (its own, or its lineage's), or None."""
    _, task_state = _points_task_state(plan, step, flow, state)
    if task_state is not None and task_state.is_successful() and isinstance(task_state.result, list):
        return [dict(point) for point in task_state.result]
    return None


def points_failure(plan: Plan, step: Step, flow: prefect.Flow | None, state: Any) -> str:
    """Why a scan has no points: the failed `points of` task's message."""
    root, task_state = _points_task_state(plan, step, flow, state)
    if task_state is not None and task_state.is_failed():
        return f"task 'points of {root}' failed: {task_state.message}"
    return f"the points of {root} were never computed"


def point_not_run_reason(plan: Plan, step: Step, index: int, done: dict[str, list[ChildSummary]]) -> str | None:
    """Why point `index` of `step` never started: the same point of a parent of its scan that
    failed or did not run (`upstream 'impact[quad_k=2.0, drift_length=1.0]' failed`)."""
    reasons = []
    for parent in step.upstream:
        if parent not in done or plan.step(parent).lineage != step.lineage:
            continue
        same_point = [c for c in done[parent] if c.point_index == index]
        for summary in same_point:
            if summary.not_run:
                reasons.append(f"upstream {summary.label!r} was not run")
            elif not summary.ok:
                reasons.append(f"upstream {summary.label!r} failed")
    return "; ".join(reasons) or None


def gathered_reason(parent: str, points: list[ChildSummary]) -> str | None:
    """`upstream 'analysis' failed (1 of 6 points)`, for a step that gathers a scan's points."""
    if not points:
        return f"upstream {parent!r} has no points"
    failed = sum(1 for c in points if not c.ok and not c.not_run)
    not_run = sum(1 for c in points if c.not_run)
    if failed:
        return f"upstream {parent!r} failed ({failed} of {len(points)} points)"
    if not_run:
        return f"upstream {parent!r} was not run ({not_run} of {len(points)} points)"
    return None


def short_label(label: str, alias: str, index: int | None, width: int = LABEL_WIDTH) -> str:
    """A point's label cut to `width`, keeping it told apart from the others: a long one starts
    with the point's index (`impact[17] quad_k=0.5, drift_length=…`)."""
    if index is None or len(label) <= width:
        return label
    values = label[len(alias) + 1 : -1] if label.startswith(f"{alias}[") and label.endswith("]") else label
    text = f"{alias}[{index}] {values}"
    return text if len(text) <= width else text[: width - 1] + "…"


def table_rows(children: list[ChildSummary]) -> list[tuple[str, list[ChildSummary]]]:
    """The summary table's rows: one child a row, except that a step with more than FOLD_ABOVE
    points is one row (its points and the runs they started), where its first point was."""
    counts = Counter(c.alias for c in children if c.point_index is not None)
    folded = {alias for alias, n in counts.items() if n > FOLD_ABOVE}
    rows: list[tuple[str, list[ChildSummary]]] = []
    at: dict[str, int] = {}
    for child in children:
        group = child.point_of
        if group in folded:
            if group not in at:
                at[group] = len(rows)
                rows.append((group, []))
            rows[at[group]][1].append(child)
        else:
            rows.append(("", [child]))
    return rows


def folded_row(alias: str, group: list[ChildSummary]) -> tuple[str, ...]:
    """`impact × 1000 | lume/impact | 999 Success, 1 Failed | 0.21-0.90s | per point: --json`."""
    from rich.markup import escape

    points = [c for c in group if c.point_index is not None and c.alias == alias]
    colour = "green" if all(c.ok for c in group) else "red"
    took = [c.duration_s for c in points if c.duration_s is not None]
    nested = len(group) - len(points)
    counts = state_counts(points) + (f" (+{nested} runs they started)" if nested else "")
    return (
        f"{alias} × {len(points)}",
        points[0].flow,
        f"[{colour}]{escape(counts)}[/]",
        f"{min(took):.2f}-{max(took):.2f}s" if took else "",
        "per point: --json",
    )


def point_label_width(plan: Plan) -> int:
    """The longest label among the first default points of the plan's per-point steps."""
    width = 0
    for step in plan.steps:
        scan = plan.step(step.lineage).scan if step.lineage is not None else None
        if scan is not None:
            from compiler.runtime.scans import point_name  # imports Prefect: only for a scan

            width = max([width] + [len(point_name(step.alias, point)) for point in scan.points(100)])
    return width


def state_counts(points: list[ChildSummary]) -> str:
    """`11 Success, 1 Failed`: a folded step's states, most common first."""
    counts = Counter(c.state for c in points)
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
