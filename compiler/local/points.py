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
    for summary in _same_point_upstream(plan, step, index, done):
        if summary.not_run:
            cause = f": {summary.cause}" if summary.cause else ""
            reasons.append(f"upstream {summary.label!r} was not run{cause}")
        elif not summary.ok:
            reasons.append(f"upstream {summary.label!r} failed")
    return "; ".join(reasons) or None


def upstream_cause(plan: Plan, step: Step, index: int, done: dict[str, list[ChildSummary]]) -> str | None:
    """The loader failure behind the same point upstream that did not run, if that was why."""
    return next((c.cause for c in _same_point_upstream(plan, step, index, done) if c.not_run and c.cause), None)


def _same_point_upstream(plan: Plan, step: Step, index: int, done: dict[str, list[ChildSummary]]) -> list[ChildSummary]:
    return [
        summary
        for parent in step.upstream
        if parent in done and plan.step(parent).lineage == step.lineage
        for summary in done[parent]
        if summary.point_index == index
    ]


def gathered_reason(parent: str, points: list[ChildSummary]) -> str | None:
    """`upstream 'analysis' failed (1 of 6 points)`, for a step that gathers a scan's points."""
    if not points:
        return f"upstream {parent!r} has no points"
    failed = sum(1 for c in points if not c.ok and not c.not_run)
    not_run = sum(1 for c in points if c.not_run)
    if failed:
        return f"upstream {parent!r} failed ({failed} of {len(points)} points)"
    if not_run:
        caused = next((c for c in points if c.not_run and c.cause), None)
        first = f"; first {caused.label}: {caused.reason}" if caused is not None else ""
        return f"upstream {parent!r} was not run ({not_run} of {len(points)} points{first})"
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


def loader_failures(
    plan: Plan,
    step: Step,
    flow: prefect.Flow | None,
    state: Any,
    done: dict[str, list[ChildSummary]],
    index: int | None = None,
) -> list[str]:
    """The composite's own loaders of `step`'s mappings from per-point parents that failed for a
    point (for point `index` only, when given), each named with its mapping, the parent's point
    and the loader's error: `loading 'emittance' from 'impact[quad_k=2.0, drift_length=1.0]'
    failed (task 'load_db_result'): ...`. Only the first failure of a loader chain is named (a
    `load_db_result` after a failed `get_task_run_result` is TriggerFailed, not a cause)."""
    from prefect.engine.state import TriggerFailed

    from compiler.runtime.local import orchestration_kind

    task_states = state.result if state is not None and isinstance(state.result, dict) else {}
    if flow is None or not task_states:
        return []
    runs = {task: str(task.name)[len("run ") :] for task in flow.tasks if orchestration_kind(task) == "run_child_flow"}
    mine = [task for task, alias in runs.items() if alias == step.alias]
    # The composite's own tasks between the parents' runs and this step's run, in a fixed order.
    seen: set[Any] = set()
    pending = list(mine)
    fetches = []
    while pending:
        for edge in sorted(flow.edges_to(pending.pop()), key=lambda e: (str(e.key), flow.slugs[e.upstream_task])):
            task = edge.upstream_task
            if task in seen or task in runs:
                continue
            seen.add(task)
            pending.append(task)
            if orchestration_kind(task) == "get_task_run_result":
                fetches.append(task)
    failures = []
    for fetch in sorted(fetches, key=lambda t: flow.slugs[t]):
        parent = next((runs[e.upstream_task] for e in flow.edges_to(fetch) if e.upstream_task in runs), None)
        slug = flow.constants.get(fetch, {}).get("task_slug")
        mapping = next((m for m in step.inputs if m.parent == parent and m.task_slug == slug), None)
        if parent is None or mapping is None:
            continue
        chain = [fetch] + [e.downstream_task for e in flow.edges_from(fetch) if e.downstream_task in seen]
        for point in range(len(done.get(parent, []))) if index is None else [index]:
            for task in chain:
                task_state = task_states.get(task)
                children = getattr(task_state, "map_states", None) or []
                child = children[point] if point < len(children) else None
                if child is not None and child.is_failed() and not isinstance(child, TriggerFailed):
                    label = done[parent][point].label if point < len(done.get(parent, [])) else parent
                    failures.append(f"loading {mapping.parameter!r} from {label!r} failed (task {task.name!r}): {child.message}")
                    break
    return failures
