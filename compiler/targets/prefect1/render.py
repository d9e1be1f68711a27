"""The prefect1 backend's renderer. Plan -> {relative path: text}: Jinja2 lays out what the plan decided, black formats the Python.

Every value that comes from a spec or the lock reaches flow.py as a Python literal built by
compiler.values.literal (the values policy), never as raw text.
"""

from __future__ import annotations

import json
from typing import Any

from compiler.fingerprint import header_lines
from compiler.graph import mermaid, node_suffix
from compiler.plan import MappedInput, Plan, Step
from compiler.targets.common import comment, format_python, md, parameter_rows, template
from compiler.targets.prefect1.options import duration_text, retries_cell, run_options
from compiler.targets.prefect1.scans import point_input_comment, point_input_expression, point_step_view, scan_rows
from compiler.values import literal  # the only way spec and lock values enter flow.py

SCRIPT_PATH = "/opt/flowc/flow.py"
# Local storage's directory, fixed (its default is the registering user's home), so that the
# serialized flow and its idempotency key are the same from every machine.
STORAGE_DIRECTORY = "/opt/flowc"
RUN_CONFIG_CLASSES = {"docker": "DockerRun", "kubernetes": "KubernetesRun"}


def render_plan(plan: Plan) -> dict[str, str]:
    """The generated project's files, relative to generated/<name>/."""
    bodies = {
        "flow.py": format_python(template("prefect1/flow.py.j2").render(_flow_view(plan))),
        "Dockerfile": template("prefect1/Dockerfile.j2").render(_dockerfile_view(plan)),
        "README.md": template("prefect1/README.md.j2").render(_readme_view(plan)),
    }
    return {
        name: header_lines(plan.spec_path, plan.inputs_digest, body, comment="<!--" if name.endswith(".md") else "#")
        + body
        for name, body in bodies.items()
    }


# flow.py ----------------------------------------------------------------------------------------


def _flow_view(plan: Plan) -> dict[str, Any]:
    names = ", ".join(step.alias for step in plan.steps)
    runtime_imports = ["IndexedFlow", "LocalThreadExecutor"]
    if any(m.map_type == "db" for s in plan.steps for m in s.inputs):
        runtime_imports.append("load_db_result")
    runtime_imports.append("run_child_flow")
    scans = any(step.per_point for step in plan.steps)
    if scans:
        runtime_imports += ["point_names"]
        if any(step.for_each is not None for step in plan.steps):
            runtime_imports.append("point_parameters")
        runtime_imports += ["scan_parameters", "scan_points"]
    if any(step.scan is not None and step.scan.max_concurrency is not None for step in plan.steps):
        runtime_imports.append("ScanSlots")
    return {
        "prefect_imports": "Parameter, unmapped" if scans else "Parameter",
        "docstring": comment(f"{plan.name}: a flow of flows over {names}.").replace('"', "'"),
        "spec_path": plan.spec_path,
        "run_config_class": RUN_CONFIG_CLASSES[plan.run_config],
        "runtime_imports": runtime_imports,
        "image": literal(plan.image),
        "labels": literal(list(plan.labels)),
        "env": literal(dict(plan.env)) if plan.env else "",
        "flow_name": literal(plan.name),
        "script_path": literal(SCRIPT_PATH),
        "storage_directory": literal(STORAGE_DIRECTORY),
        "steps": [_step_view(number, step, plan) for number, step in enumerate(plan.steps, start=1)],
    }


def _step_view(number: int, step: Step, plan: Plan) -> dict[str, Any]:
    title = f"{number}. {step.alias}: {step.project_name}/{step.flow_name}"
    if step.upstream:
        title += ", after " + ", ".join(step.upstream)
    comments = [f"depends on {', '.join(step.depends_on)} (order only)"] if step.depends_on else []
    if step.per_point:
        return {**_single_step_view(step, plan, comment(title), comments), **point_step_view(step, plan)}
    return _single_step_view(step, plan, comment(title), comments)


def _single_step_view(step: Step, plan: Plan, title: str, comments: list[str]) -> dict[str, Any]:
    return {
        "title": title,
        "comments": comments,
        "parameters": [
            {
                "variable": p.variable,
                "name": literal(p.name),
                "default": "required=True" if p.required else f"default={literal(p.default)}",
            }
            for p in step.parameters
        ],
        "inputs": [_input_view(step, mapped, plan) for mapped in step.inputs],
        "run_variable": step.run_variable,
        "flow_name": literal(step.flow_name),
        "project_name": literal(step.project_name),
        "step_name": literal(step.alias),
        "options": run_options(step, lambda text: text),
        "upstream": [plan.step(alias).run_variable for alias in step.upstream],
        "per_point": False,
        "point_values": [],
        "run": "run_child_flow",
        "parameters_expression": "{ " + "".join(f"{literal(name)}: {variable}, " for name, variable in step.arguments) + " }",
        "run_name": None,
        "point": None,
        "run_task_args": f'{{"name": {literal("run " + step.alias)} }}',
    }


def _input_view(step: Step, mapped: MappedInput, plan: Plan) -> dict[str, str]:
    parent = plan.step(mapped.parent)
    text = f"{mapped.parameter} <- {mapped.parent}.{mapped.task_name} ({mapped.map_type}"
    if mapped.map_type == "db":
        text += f", attribute_index {json.dumps(list(mapped.attribute_index))}"
    if parent.per_point:
        return {
            "variable": mapped.variable,
            "expression": point_input_expression(mapped, parent),
            "comment": comment(text + ")" + point_input_comment(mapped, plan)),
        }
    result = f"get_task_run_result({parent.run_variable}, {literal(mapped.task_slug)})"
    if mapped.map_type == "db":
        result = f"load_db_result({result}, attribute_index={literal(list(mapped.attribute_index))})"
    if mapped.note:
        text += f"; {mapped.note}"
    return {"variable": mapped.variable, "expression": result, "comment": comment(text + ")")}


# Dockerfile -------------------------------------------------------------------------------------


def _dockerfile_view(plan: Plan) -> dict[str, Any]:
    # Only validated names reach the Dockerfile: an identifier, checked image references, a
    # checked spec path and a hex digest.
    return {
        "name": plan.name,
        "base_image": plan.base_image,
        "image": plan.image,
        "script_path": SCRIPT_PATH,
        "spec_path": plan.spec_path,
        "inputs_digest": plan.inputs_digest,
    }


# README.md --------------------------------------------------------------------------------------


def _readme_view(plan: Plan) -> dict[str, Any]:
    return {
        "name": plan.name,
        "spec_path": plan.spec_path,
        "spec_link": "../../" + plan.spec_path,
        "project_name": md(plan.project_name),
        "step_count": sum(plan.point_count(step) for step in plan.steps),
        "mermaid": mermaid(plan),
        "scan_rows": scan_rows(plan),
        "step_rows": [
            {
                "number": number,
                "alias": step.alias,
                "points": node_suffix(plan, step),
                "flow": md(f"{step.project_name}/{step.flow_name}"),
                "after": ", ".join(f"`{a}`" for a in step.upstream) or "start",
                "retries": retries_cell(step),
                "timeout": "none" if step.timeout_s is None else duration_text(step.timeout_s),
                "labels": "the flow's own"
                if step.labels is None
                else (", ".join(f"`{md(label)}`" for label in step.labels) or "none"),
            }
            for number, step in enumerate(plan.steps, start=1)
        ],
        "parameter_rows": parameter_rows(plan),
        "mapping_rows": [
            {
                "target": md(f"{step.alias}.{m.parameter}"),
                "source": md(f"{m.parent}.{m.task_name}"),
                "slug": md(m.task_slug),
                "map_type": m.map_type + (", per point" if m.per_point else ", gathered (list)" if m.gathered else ""),
                "attribute_index": f"`{md(json.dumps(list(m.attribute_index)))}`" if m.attribute_index else "",
            }
            for step in plan.steps
            for m in step.inputs
        ],
        "mapping_notes": [
            md(f"{step.alias}.{m.parameter} <- {m.parent}.{m.task_slug}: {m.note}")
            for step in plan.steps
            for m in step.inputs
            if m.note
        ],
        "image": plan.image,
        "base_image": plan.base_image,
        "run_config_class": RUN_CONFIG_CLASSES[plan.run_config],
        "labels": ", ".join(f"`{md(label)}`" for label in plan.labels),
        "script_path": SCRIPT_PATH,
    }
