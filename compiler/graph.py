"""The composition as a graph, for `flowc graph` and every target's README: Mermaid and DOT.

Target-neutral: it reads the Plan only.
"""

from __future__ import annotations

import json

from compiler.plan import Edge, Plan, Step


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


def node_suffix(plan: Plan, step: Step) -> str:
    """` × 6` after a per-point step's name in the graphs."""
    return f" × {plan.point_count(step)}" if step.per_point else ""
