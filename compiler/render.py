"""Plan -> {relative path: text}: Jinja2 lays out what the plan decided, black formats the Python.

Every value that comes from a spec or the lock reaches flow.py as a Python literal built by
compiler.values.literal (the values policy), never as raw text.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from compiler.fingerprint import TEMPLATES_DIR, header_lines
from compiler.plan import Edge, MappedInput, Plan, Step
from compiler.render_scans import node_suffix, point_input_comment, point_input_expression, point_step_view, scan_rows
from compiler.values import literal  # the only way spec and lock values enter flow.py

if TYPE_CHECKING:
    import jinja2

SCRIPT_PATH = "/opt/flowc/flow.py"
# Local storage's directory, fixed (its default is the registering user's home), so that the
# serialized flow and its idempotency key are the same from every machine.
STORAGE_DIRECTORY = "/opt/flowc"
RUN_CONFIG_CLASSES = {"docker": "DockerRun", "kubernetes": "KubernetesRun"}


def render_plan(plan: Plan) -> dict[str, str]:
    """The generated project's files, relative to generated/<name>/."""
    bodies = {
        "flow.py": _format_python(_template("flow.py.j2").render(_flow_view(plan))),
        "Dockerfile": _template("Dockerfile.j2").render(_dockerfile_view(plan)),
        "README.md": _template("README.md.j2").render(_readme_view(plan)),
    }
    return {
        name: header_lines(plan.spec_path, plan.inputs_digest, body, comment="<!--" if name.endswith(".md") else "#")
        + body
        for name, body in bodies.items()
    }


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def _template(name: str) -> jinja2.Template:
    return _environment().get_template(name)


BLACK_MODE_ARGS = {"line_length": 100}


def _format_python(source: str) -> str:
    """black, in one pass: black is most of a compile's time (README.md, Benchmarks).

    `black.format_str` formats twice whenever its input was not already black's output (the
    second pass only guards against rare instabilities), which the template's output never is.
    Generated code is plain calls and literals, for which one pass is already a fixpoint: tests
    check `format_str(output) == output` for every example and for random specs (test_properties),
    and black is pinned in pyproject.toml. Without the private function, both passes run.
    """
    import black

    mode = black.Mode(target_versions={black.TargetVersion.PY310}, **BLACK_MODE_ARGS)
    format_once = getattr(black, "_format_str_once", None)
    if format_once is None:
        return black.format_str(source, mode=mode)
    return format_once(source, mode=mode)


def _comment(text: str) -> str:
    """Text for a `#` comment: one line of printable characters, whatever the spec or lock held
    (a NUL from a child flow's task name would make flow.py impossible to import)."""
    return _printable(" ".join(text.split()))


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


# flow.py ----------------------------------------------------------------------------------------


def _flow_view(plan: Plan) -> dict[str, Any]:
    names = ", ".join(step.alias for step in plan.steps)
    runtime_imports = ["IndexedFlow", "LocalThreadExecutor"]
    if any(m.map_type == "db" for s in plan.steps for m in s.inputs):
        runtime_imports.append("load_db_result")
    scans = any(step.per_point for step in plan.steps)
    if scans:
        runtime_imports += ["point_names", "point_parameters", "scan_points"]
    if any(step.scan is not None and step.scan.max_concurrency is not None for step in plan.steps):
        runtime_imports.append("ScanSlots")
    return {
        "prefect_imports": "Parameter, unmapped" if scans else "Parameter",
        "docstring": _comment(f"{plan.name}: a flow of flows over {names}.").replace('"', "'"),
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
        return {**_single_step_view(step, plan, _comment(title), comments), **point_step_view(step, plan)}
    return _single_step_view(step, plan, _comment(title), comments)


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
        "done_variable": step.done_variable,
        "flow_name": literal(step.flow_name),
        "project_name": literal(step.project_name),
        "upstream": [plan.step(alias).done_variable for alias in step.upstream],
        "per_point": False,
        "point_values": [],
        "create": "create_flow_run",
        "wait": "wait_for_flow_run",
        "parameters_expression": "{ " + "".join(f"{literal(name)}: {variable}, " for name, variable in step.arguments) + " }",
        "run_name": None,
        "run_task_args": f'{{"name": {literal("run " + step.alias)} }}',
        "wait_task_args": f'{{"name": {literal("wait for " + step.alias)} }}',
        "raise_final_state": "True",
    }


def _input_view(step: Step, mapped: MappedInput, plan: Plan) -> dict[str, str]:
    parent = plan.step(mapped.parent)
    comment = f"{mapped.parameter} <- {mapped.parent}.{mapped.task_name} ({mapped.map_type}"
    if mapped.map_type == "db":
        comment += f", attribute_index {json.dumps(list(mapped.attribute_index))}"
    if parent.per_point:
        return {
            "variable": mapped.variable,
            "expression": point_input_expression(mapped, parent),
            "comment": _comment(comment + ")" + point_input_comment(mapped, plan)),
        }
    result = (
        f"get_task_run_result({parent.run_variable}, {literal(mapped.task_slug)}, "
        f"upstream_tasks=[{parent.done_variable}])"
    )
    if mapped.map_type == "db":
        result = f"load_db_result({result}, attribute_index={literal(list(mapped.attribute_index))})"
    if mapped.note:
        comment += f"; {mapped.note}"
    return {"variable": mapped.variable, "expression": result, "comment": _comment(comment + ")")}


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
        "project_name": _md(plan.project_name),
        "step_count": sum(plan.point_count(step) for step in plan.steps),
        "mermaid": mermaid(plan),
        "scan_rows": scan_rows(plan),
        "step_rows": [
            {
                "number": number,
                "alias": step.alias,
                "points": node_suffix(plan, step),
                "flow": _md(f"{step.project_name}/{step.flow_name}"),
                "after": ", ".join(f"`{a}`" for a in step.upstream) or "start",
            }
            for number, step in enumerate(plan.steps, start=1)
        ],
        "parameter_rows": [
            {
                "name": _md(p.name),
                "default": "" if p.required else f"`{_md(json.dumps(p.default))}`",
                "required": "yes" if p.required else "no",
            }
            for p in plan.parameters
        ],
        "mapping_rows": [
            {
                "target": _md(f"{step.alias}.{m.parameter}"),
                "source": _md(f"{m.parent}.{m.task_name}"),
                "slug": _md(m.task_slug),
                "map_type": m.map_type + (", per point" if m.per_point else ", gathered (list)" if m.gathered else ""),
                "attribute_index": f"`{_md(json.dumps(list(m.attribute_index)))}`" if m.attribute_index else "",
            }
            for step in plan.steps
            for m in step.inputs
        ],
        "mapping_notes": [
            _md(f"{step.alias}.{m.parameter} <- {m.parent}.{m.task_slug}: {m.note}")
            for step in plan.steps
            for m in step.inputs
            if m.note
        ],
        "image": plan.image,
        "base_image": plan.base_image,
        "run_config_class": RUN_CONFIG_CLASSES[plan.run_config],
        "labels": ", ".join(f"`{_md(label)}`" for label in plan.labels),
        "script_path": SCRIPT_PATH,
    }


def _md(text: str) -> str:
    """Text for a Markdown table cell inside backticks."""
    return _printable(" ".join(text.replace("|", "\\|").replace("`", "'").split()))


# Words Mermaid's flowchart grammar reads as keywords wherever a node id stands.
MERMAID_KEYWORDS = frozenset(
    {"end", "graph", "flowchart", "subgraph", "style", "class", "classDef", "click", "linkStyle",
     "call", "href", "interpolate", "direction", "default", "accTitle", "accDescr"}
)


def mermaid_ids(plan: Plan) -> dict[str, str]:
    """Node id per step alias: the alias itself, unless Mermaid would read it as a keyword."""
    taken = {step.alias for step in plan.steps}
    ids = {}
    for step in plan.steps:
        node_id = step.alias
        while node_id in MERMAID_KEYWORDS or (node_id != step.alias and node_id in taken):
            node_id += "_"
        taken.add(node_id)
        ids[step.alias] = node_id
    return ids


def mermaid(plan: Plan) -> str:
    """The composition as a Mermaid flowchart: a node per step, an edge per mapping."""
    ids = mermaid_ids(plan)
    lines = ["flowchart LR"]
    for step in plan.steps:
        label = _mermaid_text(step.alias + node_suffix(plan, step)) + "<br/>" + _mermaid_text(step.flow_name)
        lines.append(f'    {ids[step.alias]}["{label}"]')
    for edge in plan.edges:
        label = _edge_label(edge)
        arrow = "-.->" if edge.map_type is None else "-->"
        lines.append(f'    {ids[edge.parent]} {arrow}|"{_mermaid_text(label)}"| {ids[edge.child]}')
    return "\n".join(lines)


def dot(plan: Plan) -> str:
    """The composition as Graphviz DOT."""
    lines = [f"digraph {json.dumps(plan.name)} {{", "    rankdir=LR;"]
    for step in plan.steps:
        label = step.alias + node_suffix(plan, step) + "\n" + step.flow_name
        lines.append(f"    {json.dumps(step.alias)} [label={json.dumps(label)}];")
    for edge in plan.edges:
        label = _edge_label(edge)
        style = ", style=dashed" if edge.map_type is None else ""
        lines.append(f"    {json.dumps(edge.parent)} -> {json.dumps(edge.child)} [label={json.dumps(label)}{style}];")
    lines.append("}")
    return "\n".join(lines)


def _edge_label(edge: Edge) -> str:
    if edge.map_type is None:
        return edge.label
    return f"{edge.label} ({edge.map_type}{', ' + edge.fan if edge.fan else ''})"


def _mermaid_text(text: str) -> str:
    return "".join(f"#{ord(c)};" if c in '"<>#&' else c for c in text)
