"""The prefect3 layout of per-point steps: a scanned step and its for_each descendants.

A per-point step is one task that runs every point (`flowc.run_points`, its options from the
plan); the flow body computes its points: the scanned step's from the run's scan lists
(`flowc.scan_points`), a for_each step's from its lineage's runs (`flowc.point_inputs`, with the
values mapped from the same point). A step that runs once and maps from a per-point step gets
the list of every point's value (`flowc.gather`), in point order.
"""

from __future__ import annotations

import json
from typing import Any

from compiler.plan import MappedInput, Plan, Step
from compiler.runtime.points import point_name
from compiler.targets.common import comment, md
from compiler.values import literal

RETURN_TASK = "return"


def gathered_expression(mapped: MappedInput, parent_future: str) -> str:
    """Every point's value of a per-point parent, as one list (db: each item through the loader)."""
    arguments = [parent_future, literal(mapped.task_name)]
    if mapped.map_type == "db":
        arguments.append(literal(list(mapped.attribute_index)))
    return f"flowc.gather.submit({', '.join(arguments)})"


def mapping_text(mapped: MappedInput, plan: Plan) -> str:
    """The comment beside a mapping: where the value comes from, and per point or gathered."""
    source = f"{mapped.parent}'s return value" if mapped.task_name == RETURN_TASK else f"{mapped.parent}.{mapped.task_name}"
    text = f"{mapped.parameter} <- {source} ({mapped.map_type}"
    if mapped.map_type == "db":
        text += f", attribute_index {json.dumps(list(mapped.attribute_index))}"
    if mapped.per_point:
        text += ", the same point's"
    elif mapped.gathered:
        text += f", gathered: a list, one item per point of {plan.step(mapped.parent).lineage}"
    return text + ")"


def point_step_view(step: Step, plan: Plan, futures: dict[str, str], points_variable: str) -> dict[str, Any]:
    """What the template needs for a per-point step beyond a single step's view."""
    count = plan.point_count(step)
    lines = []
    if step.scan is not None:
        axes = " x ".join(axis.parameter for axis in step.scan.axes)
        order = "first parameter slowest" if step.scan.mode == "grid" else "item by item"
        lines.append(f"scan ({step.scan.mode} over {axes}, {order}): one child run per point, {count} by default")
        if step.scan.max_concurrency is not None:
            lines.append(f"at most {step.scan.max_concurrency} of these runs alive at once")
        values = ", ".join(f"{literal(axis.parameter)}: values[{literal(axis.name)}]" for axis in step.scan.axes)
        expression = f"flowc.scan_points({literal(step.alias)}, {literal(step.scan.mode)}, {{{values}}})"
    else:
        lines.append(f"for each point of {step.lineage} ({count} by default), after the same point of {step.for_each}")
        mapped = ", ".join(
            f"{literal(m.parameter)}: flowc.from_points({futures[m.parent]}, {literal(m.task_name)}"
            + (f", {literal(list(m.attribute_index))}" if m.map_type == "db" else "")
            + ")"
            for m in step.inputs
            if m.per_point
        )
        after = [futures[a] for a in step.depends_on if plan.step(a).lineage == step.lineage]
        expression = (
            f"flowc.point_inputs.submit({futures[step.for_each or '']}, {{{mapped}}}"
            + (f", after=[{', '.join(after)}]" if after else "")
            + ")"
        )
    if step.retries:
        lines.append(f"a failed point is started anew (a new key) up to {step.retries} more time(s)")
    return {
        "point_comments": [comment(line) for line in lines]
        + [comment(mapping_text(m, plan)) for m in step.inputs if m.per_point],
        "points_variable": points_variable,
        "points_expression": expression,
        "max_concurrency": literal(step.scan.max_concurrency if step.scan is not None else None),
        "retries": literal(step.retries),
        "retry_delay": literal(step.retry_delay_s),
    }


def wait_expression(parent: Step, step: Step, future: str) -> str:
    """What an order-only `depends_on` waits for: a per-point parent outside this step's
    lineage must have succeeded at every point (inside it, `point_inputs` pairs the points)."""
    if parent.lineage is not None and parent.lineage != step.lineage:
        return f"flowc.every_point.submit({future})"
    return future


def scan_rows(plan: Plan, first_shown: int = 4) -> list[dict[str, Any]]:
    """README: one row per scanned step with its axes, point count and first run names."""
    rows = []
    for step in plan.steps:
        if step.scan is None:
            continue
        scan = step.scan
        first = [md(point_name(step.alias, point)) for point in scan.points(first_shown)]
        more = scan.point_count - len(first)
        rows.append(
            {
                "alias": step.alias,
                "mode": scan.mode,
                "axes": ", ".join(
                    f"`{md(axis.name)}` ({len(axis.values)}: `{md(json.dumps(list(axis.values)))}`)" for axis in scan.axes
                ),
                "count": scan.point_count,
                "max_concurrency": scan.max_concurrency or "all",
                "first": ", ".join(f"`{name}`" for name in first) + (f" and {more} more" if more > 0 else ""),
                "for_each": ", ".join(f"`{s.alias}`" for s in plan.steps if s.lineage == step.alias and s is not step)
                or "none",
            }
        )
    return rows
