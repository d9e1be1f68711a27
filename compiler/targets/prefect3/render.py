"""Plan -> the prefect3 project: flow.py (run_deployment per step), prefect.yaml, Dockerfile, README.

The plan is the same as for prefect1; what is Prefect 3's lives here: step tasks that run the
child's deployment, futures for concurrency, tags for labels, and the deployment file. Every spec
value reaches flow.py as a literal (`literal`) and prefect.yaml as JSON (a subset of YAML).
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from compiler.fingerprint import header_lines
from compiler.plan import MappedInput, Plan, Step
from compiler.graph import mermaid
from compiler.targets.common import comment, format_python, md, parameter_rows, template
from compiler.targets.prefect3.checks import base_image
from compiler.targets.prefect3.scans import gathered_expression, mapping_text, point_step_view, scan_rows, wait_expression
from compiler.values import literal

# Where the image holds flow.py; prefect.yaml's pull step makes it the working directory.
DIRECTORY = "/opt/flowc"
RETURN_TASK = "return"
# Names flow.py defines or imports at module level, and the flow function's own locals.
MODULE_NAMES = frozenset({"Any", "Dict", "Optional", "flow", "task", "run_deployment", "flowc", "PARAMETERS"})
LOCAL_NAMES = frozenset({"parameters", "values"})


def render_plan(plan: Plan) -> dict[str, str]:
    """The generated project's files, relative to generated/<name>/."""
    names = _Names(plan)
    bodies = {
        "flow.py": format_python(template("prefect3/flow.py.j2").render(_flow_view(plan, names))),
        "prefect.yaml": template("prefect3/prefect.yaml.j2").render(_deployment_view(plan)),
        "Dockerfile": template("prefect3/Dockerfile.j2").render(_dockerfile_view(plan)),
        "README.md": template("prefect3/README.md.j2").render(_readme_view(plan)),
    }
    return {
        name: header_lines(plan.spec_path, plan.inputs_digest, body, comment="<!--" if name.endswith(".md") else "#")
        + body
        for name, body in bodies.items()
    }


def deployment_name(step: Step) -> str:
    """`<flow>/<deployment>`, as run_deployment names a child's deployment."""
    return f"{step.flow_name}/{step.deployment or step.flow_name}"


def entrypoint(plan: Plan) -> str:
    return f"flow.py:{plan.name}"


class _Names:
    """Python names in flow.py: the plan's, made unique against the module's own names."""

    def __init__(self, plan: Plan) -> None:
        taken = set(MODULE_NAMES) | set(LOCAL_NAMES) | {plan.name}
        self.function: dict[str, str] = {}
        self.future: dict[str, str] = {}
        self.value: dict[tuple[str, str], str] = {}
        self.points: dict[str, str] = {}
        for step in plan.steps:
            self.future[step.alias] = self._claim(step.run_variable, taken)
            for mapped in step.inputs:
                if not mapped.per_point:
                    self.value[(step.alias, mapped.parameter)] = self._claim(mapped.variable, taken)
            if step.per_point:
                self.points[step.alias] = self._claim(step.points_variable, taken)
        for step in plan.steps:
            self.function[step.alias] = self._claim(f"run_{step.alias}", taken)

    @staticmethod
    def _claim(name: str, taken: set[str]) -> str:
        while name in taken:
            name += "_"
        taken.add(name)
        return name


# flow.py ----------------------------------------------------------------------------------------


def _flow_view(plan: Plan, names: _Names) -> dict[str, Any]:
    aliases = ", ".join(step.alias for step in plan.steps)
    return {
        "docstring": comment(f"{plan.name}: a flow of flows over {aliases}.").replace('"', "'"),
        "spec_path": plan.spec_path,
        "flow_name": literal(plan.name),
        "function": plan.name,
        "defaults": [{"name": literal(p.name), "value": literal(p.default)} for p in plan.parameters if not p.required],
        "required": [literal(p.name) for p in plan.parameters if p.required],
        "steps": [_step_view(number, step, plan, names) for number, step in enumerate(plan.steps, start=1)],
        # A per-point step's outcome is the list of its points' runs.
        "result_type": "Any" if any(step.per_point for step in plan.steps) else "str",
    }


def _step_view(number: int, step: Step, plan: Plan, names: _Names) -> dict[str, Any]:
    title = f"{number}. {step.alias}: {step.project_name}/{step.flow_name}"
    if step.upstream:
        title += ", after " + ", ".join(step.upstream)
    comments = [f"depends on {', '.join(step.depends_on)} (order only)"] if step.depends_on else []
    if step.retries:
        comments.append(f"a failed run is started anew (a new key) up to {step.retries} more time(s)")
    options = []
    if step.retries and not step.per_point:  # a per-point step retries each point (run_points)
        options += [f"retries={step.retries}", f"retry_delay_seconds={literal(step.retry_delay_s)}"]
    by_parameter = {p.child_parameter: p for p in step.parameters}
    per_point_inputs = {m.parameter for m in step.inputs if m.per_point}
    arguments = []
    for child_parameter, _ in step.arguments:
        if child_parameter in per_point_inputs:
            continue  # the point's own value (flowc.point_inputs)
        if child_parameter in by_parameter:
            value = f"values[{literal(by_parameter[child_parameter].name)}]"
        else:
            value = names.value[(step.alias, child_parameter)]
        arguments.append({"name": literal(child_parameter), "value": value})
    per_point = None
    if step.per_point:
        comments = [line for line in comments if not line.startswith("a failed run")]
        per_point = point_step_view(step, plan, names.future, names.points[step.alias])
        per_point["tags"] = literal(list(step.labels)) if step.labels else "None"
    return {
        "alias": literal(step.alias),
        "title": comment(title).replace('"', "'"),
        "comments": comments,
        "task_name": literal(step.alias),
        "task_options": options,
        "function": names.function[step.alias],
        "future": names.future[step.alias],
        "deployment": literal(deployment_name(step)),
        "run_name": literal(f"{plan.name}.{step.alias}"),
        "timeout": literal(step.timeout_s),
        "tags": literal(list(step.labels)) if step.labels else "",
        "inputs": [_input_view(step, mapped, names, plan) for mapped in step.inputs if not mapped.per_point],
        "arguments": arguments,
        "wait_for": [
            wait_expression(plan.step(alias), step, names.future[alias])
            for alias in step.depends_on
            if not (step.per_point and plan.step(alias).lineage == step.lineage)  # paired by point_inputs
        ],
        "per_point": per_point,
    }


def _input_view(step: Step, mapped: MappedInput, names: _Names, plan: Plan) -> dict[str, str]:
    parent = names.future[mapped.parent]
    if mapped.gathered:
        result = gathered_expression(mapped, parent)
    elif mapped.task_name == RETURN_TASK:
        result = f"flowc.return_value.submit({parent})"
    else:
        result = f"flowc.task_result.submit({parent}, {literal(mapped.task_name)})"
    if mapped.map_type == "db" and not mapped.gathered:
        result = f"flowc.load_db_result.submit({result}, {literal(list(mapped.attribute_index))})"
    return {
        "variable": names.value[(step.alias, mapped.parameter)],
        "expression": result,
        "comment": comment(mapping_text(mapped, plan)),
    }


# prefect.yaml -----------------------------------------------------------------------------------


def _deployment_view(plan: Plan) -> dict[str, Any]:
    example = plan.parameters[0].name if plan.parameters else "ALIAS-PARAMETER"
    return {
        "name": plan.name,
        "entrypoint": entrypoint(plan),
        "directory": json.dumps(DIRECTORY),
        "description": json.dumps(comment(f"flowc: a flow of flows from {plan.spec_path}")),
        "tags": json.dumps(list(plan.labels)),
        "example_parameter": comment(example),
        "work_pool": json.dumps(plan.work_pool),
        "image": json.dumps(f"{plan.image_repository}:{plan.image_tag}"),
        "parameters": _yaml_block({"parameters": {"parameters": {p.name: p.default for p in plan.parameters if not p.required}}}, 4),
        "env": _yaml_block({"env": dict(plan.env)}, 8) if plan.env else "",
    }


def _yaml_block(data: dict[str, Any], indent: int) -> str:
    """Block YAML for values from the spec, as PyYAML (which Prefect reads prefect.yaml with)
    reads them back: `1.0e-06`, not JSON's `1e-06`, which YAML 1.1 takes for a string."""
    text = yaml.safe_dump(data, default_flow_style=False, sort_keys=False, allow_unicode=False, width=1000)
    return "".join(" " * indent + line + "\n" for line in text.splitlines())


# Dockerfile -------------------------------------------------------------------------------------


def _dockerfile_view(plan: Plan) -> dict[str, Any]:
    # Only validated names reach the Dockerfile: an identifier, checked image references, a
    # checked spec path and a hex digest.
    return {
        "name": plan.name,
        "base_image": base_image(plan),
        "image": plan.image,
        "directory": DIRECTORY,
        "entrypoint": entrypoint(plan),
        "spec_path": plan.spec_path,
        "inputs_digest": plan.inputs_digest,
    }


# README.md --------------------------------------------------------------------------------------


def _readme_view(plan: Plan) -> dict[str, Any]:
    return {
        "name": plan.name,
        "spec_path": plan.spec_path,
        "spec_link": "../../" + plan.spec_path,
        "step_count": len(plan.steps),
        "mermaid": mermaid(plan),
        "step_rows": [
            {
                "number": number,
                "alias": step.alias,
                "deployment": md(deployment_name(step)),
                "after": ", ".join(f"`{a}`" for a in step.upstream) or "start",
                "retries": step.retries,
                "timeout": f"{step.timeout_s:g} s" if step.timeout_s is not None else "none",
                "tags": ", ".join(f"`{md(label)}`" for label in step.labels) if step.labels else "the deployment's",
            }
            for number, step in enumerate(plan.steps, start=1)
        ],
        "parameter_rows": parameter_rows(plan),
        "scan_rows": scan_rows(plan),
        "mapping_rows": [
            {
                "target": md(f"{step.alias}.{m.parameter}"),
                "source": md(m.parent if m.task_name == RETURN_TASK else f"{m.parent}.{m.task_name}"),
                "taken": "the child's return value" if m.task_name == RETURN_TASK else "the task's persisted result",
                "map_type": m.map_type,
                "attribute_index": f"`{md(json.dumps(list(m.attribute_index)))}`" if m.attribute_index else "",
            }
            for step in plan.steps
            for m in step.inputs
        ],
        "work_pool": md(plan.work_pool),
        "labels": ", ".join(f"`{md(label)}`" for label in plan.labels) or "none",
        "image": plan.image,
        "base_image": base_image(plan),
        "directory": DIRECTORY,
        "entrypoint": entrypoint(plan),
    }
