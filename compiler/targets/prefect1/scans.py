"""The prefect1 layout of per-point steps: a scanned step and its for_each descendants.

Points are data: the scan lists are composite parameters, `scan_points` computes the points
from them when the flow runs, `scan_parameters` every point's child parameters in one task (so
the first child starts without a task run per point before it), and each per-point step is one
mapped `run_child_flow` over them
(Prefect 1 mapping: one child run per point, with its own retries, timeout and run key), so
flow.py is the same size for 6 points as for 10,000. Mappings from the same scan take the matching point's value (mapped);
everything else is broadcast (`unmapped`); a step that runs once and maps from a per-point step
receives the list of every point's value (Prefect's reduce of a mapped task, in map order).
"""

from __future__ import annotations

import json
from typing import Any

from compiler.plan import MappedInput, Plan, Step
from compiler.targets.common import comment, md
from compiler.targets.prefect1.options import run_options
from compiler.values import literal

FIRST_POINTS_SHOWN = 4  # in the README


def point_input_expression(mapped: MappedInput, parent: Step) -> str:
    """One value per point of the parent: `get_task_run_result.map` (and the db loader, mapped)."""
    result = f"get_task_run_result.map({parent.run_variable}, unmapped({literal(mapped.task_slug)}))"
    if mapped.map_type == "db":
        result = f"load_db_result.map({result}, attribute_index=unmapped({literal(list(mapped.attribute_index))}))"
    return result


def point_input_comment(mapped: MappedInput, plan: Plan) -> str:
    parent = plan.step(mapped.parent)
    if mapped.per_point:
        return ", the same point's"
    return f", gathered: a list, one item per point of {parent.lineage}"


def point_step_view(step: Step, plan: Plan) -> dict[str, Any]:
    """What the template needs for a per-point step beyond a single step's view."""
    root = plan.step(step.lineage or step.alias)
    points = root.points_variable
    per_point = {m.parameter: m.variable for m in step.inputs if m.per_point}
    broadcast = "{" + ", ".join(
        f"{literal(name)}: {variable}" for name, variable in step.arguments if name not in per_point
    ) + "}"
    fixed = f"unmapped({broadcast})"
    values = []
    if step.scan is not None:
        axes = ", ".join(f"{literal(axis.parameter)}: {axis.variable}" for axis in step.scan.axes)
        values.append(
            {
                "variable": step.points_variable,
                "expression": f"scan_points({literal(step.alias)}, {literal(step.scan.mode)}, {{{axes}}}, "
                f"task_args={{'name': {literal('points of ' + step.alias)}}})",
            }
        )
        parameters = f"scan_parameters({broadcast}, {points}"
    else:
        parent = plan.step(step.for_each or "")
        mapped_values = ", ".join(f"{literal(name)}: {variable}" for name, variable in per_point.items())
        spread = f", **{{{mapped_values}}}" if per_point else ""
        parameters = f"point_parameters.map({fixed}{spread}, upstream_tasks=[{parent.run_variable}]"
    parameters += f", task_args={{'name': {literal('parameters of ' + step.alias)}}})"
    values.append(
        {
            "variable": step.names_variable,
            "expression": f"point_names({literal(step.alias)}, {points}, "
            f"task_args={{'name': {literal('run names of ' + step.alias)}}})",
        }
    )
    values.append({"variable": step.parameters_variable, "expression": parameters})
    run_handlers = ""
    if step.scan is not None and step.scan.max_concurrency is not None:
        values.append({"variable": step.slots_variable, "expression": f"ScanSlots({step.scan.max_concurrency})"})
        run_handlers = f", 'state_handlers': [{step.slots_variable}.acquire, {step.slots_variable}.release]"
    upstream = [
        plan.step(alias).run_variable
        if plan.step(alias).lineage == step.lineage
        else f"unmapped({plan.step(alias).run_variable})"
        for alias in step.upstream
    ]
    return {
        "per_point": True,
        "comments": [*_scan_comments(step, plan), *_depends_comment(step)],
        "point_values": values,
        "run": "run_child_flow.map",
        "flow_name": f"unmapped({literal(step.flow_name)})",
        "project_name": f"unmapped({literal(step.project_name)})",
        "step_name": f"unmapped({literal(step.alias)})",
        "options": run_options(step, lambda text: f"unmapped({text})"),
        "parameters_expression": step.parameters_variable,
        "run_name": step.names_variable,
        "point": points,
        "run_task_args": f"{{'name': {literal('run ' + step.alias)}{run_handlers}}}",
        "upstream": upstream,
    }


def _depends_comment(step: Step) -> list[str]:
    return [f"depends on {', '.join(step.depends_on)} (order only)"] if step.depends_on else []


def _scan_comments(step: Step, plan: Plan) -> list[str]:
    count = plan.point_count(step)
    if step.scan is not None:
        axes = " x ".join(axis.parameter for axis in step.scan.axes)
        order = "first parameter slowest" if step.scan.mode == "grid" else "item by item"
        lines = [f"scan ({step.scan.mode} over {axes}, {order}): one child run per point, {count} by default"]
        if step.scan.max_concurrency is not None:
            lines.append(f"at most {step.scan.max_concurrency} of these runs alive at once (ScanSlots)")
        return [comment(line) for line in lines]
    return [f"for each point of {step.lineage} ({count} by default), after the same point of {step.for_each}"]


def scan_rows(plan: Plan) -> list[dict[str, Any]]:
    """README: one row per scanned step with its axes, point count and first points."""
    rows = []
    for step in plan.steps:
        if step.scan is None:
            continue
        scan = step.scan
        first = scan.points(FIRST_POINTS_SHOWN)
        names = [md(_point_label(step.alias, point)) for point in first]
        more = scan.point_count - len(first)
        rows.append(
            {
                "alias": step.alias,
                "mode": scan.mode,
                "axes": ", ".join(
                    f"`{md(axis.name)}` ({len(axis.values)}: `{md(json.dumps(list(axis.values)))}`)"
                    for axis in scan.axes
                ),
                "count": scan.point_count,
                "max_concurrency": scan.max_concurrency or "all",
                "first": ", ".join(f"`{name}`" for name in names) + (f" and {more} more" if more > 0 else ""),
                "for_each": ", ".join(f"`{s.alias}`" for s in plan.steps if s.lineage == step.alias and s is not step)
                or "none",
            }
        )
    return rows


def _point_label(alias: str, point: dict[str, Any]) -> str:
    """As `compiler.runtime.scans.point_name` names the run (without importing the runtime)."""
    return alias + "[" + ", ".join(f"{k}={json.dumps(v, sort_keys=True, ensure_ascii=False)}" for k, v in point.items()) + "]"
